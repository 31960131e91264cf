package config

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// Loader reads agents files. It keeps the source of everything it parsed so
// that diagnostics can be printed with snippets:
//
//	l := config.NewLoader()
//	cfg, diags := l.Load(path, vars)
//	config.WriteDiagnostics(os.Stderr, diags, l.Files(), color)
type Loader struct {
	parser *hclparse.Parser
	// VarFiles are -var-file files, applied in order after RUNNER_VAR_
	// variables and before -var values.
	VarFiles []string
	// Environ is where RUNNER_VAR_name values come from; nil is the
	// process's environment.
	Environ []string
}

// NewLoader returns a Loader with an empty file cache.
func NewLoader() *Loader {
	return &Loader{parser: hclparse.NewParser()}
}

// Files returns every source the loader parsed (the agents file and any -var
// values that were parsed as expressions), keyed by the file name that
// diagnostics use.
func (l *Loader) Files() map[string]*hcl.File {
	return l.parser.Files()
}

// Load parses, evaluates, expands and validates an agents file; vars are the
// -var name=value pairs from the command line. It reads the file system (the
// file itself, file() arguments) and nothing else: no network, no engine. It
// does not look at mount sources on the host: CheckSources does, for the
// commands that mount them. The Config is nil whenever diags has errors. Diagnostics name the
// file as path was given, so pass the path the user typed.
//
// Load is NewLoader().Load; use a Loader to print diagnostics with snippets.
func Load(path string, vars map[string]string) (*Config, hcl.Diagnostics) {
	return NewLoader().Load(path, vars)
}

// Load is the package-level Load, keeping what it parsed for Files.
func (l *Loader) Load(path string, vars map[string]string) (*Config, hcl.Diagnostics) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid configuration path",
			Detail:   fmt.Sprintf("Cannot make %q absolute: %s.", path, err),
		}}
	}
	src, err := readConfigFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the configuration file",
			Detail:   ReadProblem(path, err) + ".",
		}}
	}
	file, diags := l.parser.ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	d := &decoder{
		dir:      filepath.Dir(abs),
		parser:   l.parser,
		diags:    diags,
		varFiles: l.VarFiles,
		environ:  l.Environ,
	}
	cfg := d.decode(file.Body, vars)
	cfg.File, cfg.Dir = abs, d.dir
	diags = sortDiags(dedup(d.diags))
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "run", LabelNames: []string{"name"}},
		{Type: "agent", LabelNames: []string{"name"}},
	},
}

// decoder turns one file's body into a Config, collecting every problem it
// finds rather than stopping at the first, so one run shows all of them.
type decoder struct {
	dir    string // the config file's directory: base for relative paths
	parser *hclparse.Parser

	ctx      *hcl.EvalContext // var.* and functions; count.index is added per agent instance
	declared map[string]bool  // declared variable names, for reference errors

	// agentNames are the names of every agent instance, valid or not, in the
	// order declared; namesUnknown is set when a count could not be read, so
	// the list is incomplete. patterns collects send_to entries to check
	// against the names once every block is expanded.
	agentNames   []string
	namesUnknown bool
	patterns     []sendToEntry
	// runRuntime is the run's runtime, the default of every agent that
	// sets none (the run block is decoded before the agents).
	runRuntime string
	// defaultEgress is the run's egress_default, for agents without an
	// egress block (the run block is decoded before the agents).
	defaultEgress *Egress

	varFiles []string // -var-file, in order
	environ  []string // for RUNNER_VAR_; nil: os.Environ

	diags hcl.Diagnostics
}

func (d *decoder) decode(body hcl.Body, vars map[string]string) *Config {
	content, diags := body.Content(rootSchema)
	d.diags = append(d.diags, diags...)
	var variables, runs, agents []*hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			variables = append(variables, b)
		case "run":
			runs = append(runs, b)
		case "agent":
			agents = append(agents, b)
		}
	}
	d.variables(variables, vars)
	cfg := &Config{
		Run:    d.run(runs),
		Agents: d.agents(agents),
	}
	d.checkSendTo()
	return cfg
}

func (d *decoder) add(diag *hcl.Diagnostic) {
	d.diags = append(d.diags, diag)
}

// errorf reports a problem at rng with no expression context.
func (d *decoder) errorf(rng hcl.Range, summary, detail string, args ...any) {
	d.add(&hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detail, args...),
		Subject:  rng.Ptr(),
	})
}

// at formats a range as FILE:LINE for details that point elsewhere.
func at(rng hcl.Range) string {
	return fmt.Sprintf("%s:%d", rng.Filename, rng.Start.Line)
}

// dedup drops repeated diagnostics. A counted agent evaluates its body once
// per instance, so an error that does not depend on count.index would
// otherwise be printed count times.
func dedup(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, diag := range diags {
		var subject string
		if diag.Subject != nil {
			subject = diag.Subject.String()
		}
		key := strings.Join([]string{fmt.Sprint(diag.Severity), diag.Summary, diag.Detail, subject, exprValues(diag)}, "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, diag)
	}
	return out
}

// varsObject is the value of `var` in expressions.
func varsObject(values map[string]cty.Value) cty.Value {
	if len(values) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(values)
}

// sortDiags orders diagnostics by where they are, so they read top to bottom
// and come out the same every time (hcl reports unknown attributes in map
// order). Those without a place (about -var, or something missing) go first.
func sortDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil || b.Subject == nil:
			return cmp.Compare(boolInt(a.Subject != nil), boolInt(b.Subject != nil))
		case a.Subject.Filename != b.Subject.Filename:
			return strings.Compare(a.Subject.Filename, b.Subject.Filename)
		default:
			return cmp.Compare(a.Subject.Start.Byte, b.Subject.Start.Byte)
		}
	})
	return diags
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
