package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/runner"
)

// validate, plan, apply and destroy: Terraform's workflow and flags
// (-json, -detailed-exitcode, -auto-approve), with the confirmation asked
// on a terminal when a plan weakens isolation or deletes an agent.

// prompter is where the CLI asks for a confirmation: the terminal, or in
// tests a fake one.
type prompter struct {
	in  io.Reader
	out io.Writer
	// tty says the CLI may ask: standard input and output are terminals.
	// Without one (CI, a pipe) nothing prompts.
	tty bool
}

// promptFor asks on standard input, writing to stdout, when both are a
// terminal.
func promptFor(stdout io.Writer) prompter {
	f, ok := stdout.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd())) && term.IsTerminal(int(os.Stdin.Fd()))
	return prompter{in: os.Stdin, out: stdout, tty: tty}
}

// errDeclined is the answer "no": nothing was changed.
var errDeclined = errors.New("declined")

// confirm asks question and accepts only "yes", as Terraform does.
func (p prompter) confirm(question string) error {
	fmt.Fprintf(p.out, "%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", question)
	line, err := bufio.NewReader(p.in).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(p.out)
		return errDeclined
	}
	if strings.TrimSpace(line) != "yes" {
		return errDeclined
	}
	fmt.Fprintln(p.out)
	return nil
}

// approvalReason says why a plan needs a confirmation ("" if it needs
// none): changes that weaken isolation, agents deleted.
func approvalReason(p plan.Plan) string {
	var why []string
	if n := len(p.Weakening()); n > 0 {
		why = append(why, fmt.Sprintf("%s weaken%s isolation (marked !)", plural(n, "change"), map[bool]string{true: "s"}[n == 1]))
	}
	if n := p.Count(plan.Delete); n > 0 {
		why = append(why, fmt.Sprintf("%s will be deleted", plural(n, "agent")))
	}
	return strings.Join(why, " and ")
}

// approve decides whether apply may carry out p: always with -auto-approve
// or without a terminal; else, when the plan weakens isolation or deletes
// an agent, only on "yes".
func approve(pr prompter, p plan.Plan, autoApprove bool) error {
	why := approvalReason(p)
	if why == "" || autoApprove || !pr.tty {
		return nil
	}
	return pr.confirm(fmt.Sprintf("Do you want to apply this plan? %s.", upperFirst(why)))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// jsonFlag registers -json for a command.
func jsonFlag(g *globals) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.BoolVar(&g.json, "json", false, "machine-readable output (JSON) on stdout")
	}
}

func both(fs ...func(*flag.FlagSet)) func(*flag.FlagSet) {
	return func(f *flag.FlagSet) {
		for _, x := range fs {
			x(f)
		}
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// diagJSON is one diagnostic in Terraform's machine-readable form.
type diagJSON struct {
	Severity string     `json:"severity"` // "error" or "warning"
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Range    *rangeJSON `json:"range,omitempty"`
}

type rangeJSON struct {
	Filename string  `json:"filename"`
	Start    posJSON `json:"start"`
	End      posJSON `json:"end"`
}

type posJSON struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// validateJSON is `runner validate -json`'s document (Terraform's shape).
type validateJSON struct {
	FormatVersion string     `json:"format_version"`
	Valid         bool       `json:"valid"`
	ErrorCount    int        `json:"error_count"`
	WarningCount  int        `json:"warning_count"`
	Diagnostics   []diagJSON `json:"diagnostics"`
	// Run and Agents are set when the file is valid.
	Run    string `json:"run,omitempty"`
	Agents int    `json:"agents,omitempty"`
}

// diagnosticsJSON is diags in their machine-readable form. Only the
// summary, detail and range are given: never the expression values a
// diagnostic may carry (a sensitive value could be one).
func diagnosticsJSON(diags hcl.Diagnostics) validateJSON {
	v := validateJSON{FormatVersion: "1.0", Valid: !diags.HasErrors(), Diagnostics: []diagJSON{}}
	for _, d := range diags {
		dj := diagJSON{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			dj.Severity = "warning"
			v.WarningCount++
		} else {
			v.ErrorCount++
		}
		if r := d.Subject; r != nil {
			dj.Range = &rangeJSON{Filename: r.Filename,
				Start: posJSON{r.Start.Line, r.Start.Column, r.Start.Byte}, End: posJSON{r.End.Line, r.End.Column, r.End.Byte}}
		}
		v.Diagnostics = append(v.Diagnostics, dj)
	}
	return v
}

// writeDiags prints a config stage's diagnostics: as text on stderr, or,
// for -json, kept for the command's JSON document.
func (g *globals) writeDiags(stderr io.Writer, diags hcl.Diagnostics) {
	if g.json {
		g.diags = append(g.diags, diags...)
		return
	}
	if len(diags) > 0 {
		config.WriteDiagnostics(stderr, diags, g.files, false)
	}
}

// jsonConfigError turns a config that did not load into -json output: the
// diagnostics document on stdout, status 1.
func jsonConfigError(g *globals, stdout io.Writer, err error) error {
	var ee exitError
	if g.json && errors.As(err, &ee) && ee.code == 1 && len(g.diags) > 0 {
		writeJSON(stdout, diagnosticsJSON(g.diags))
	}
	return err
}

func cmdValidate(_ context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := fileCommand(g, "validate", args, stderr, jsonFlag(g), 0, "")
	if err == nil {
		err = checkSources(g, cfg, stderr)
	}
	if err != nil {
		return jsonConfigError(g, stdout, err)
	}
	if g.json {
		v := diagnosticsJSON(g.diags)
		v.Run, v.Agents = cfg.Run.Name, len(cfg.Agents)
		return writeJSON(stdout, v)
	}
	fmt.Fprintf(stdout, "Success! %s is valid: run %q with %s.\n", cfg.File, cfg.Run.Name, plural(len(cfg.Agents), "agent"))
	return nil
}

func cmdPlan(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var detailed bool
	cfg, _, eng, err := engineCommand(ctx, g, "plan", args, stderr, both(jsonFlag(g), func(fs *flag.FlagSet) {
		fs.BoolVar(&detailed, "detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on an error")
	}), 0, "")
	if err != nil {
		return jsonConfigError(g, stdout, err)
	}
	defer eng.Close()
	p, err := newRunner(g, eng, nil).Plan(ctx, cfg)
	if err != nil {
		return err
	}
	if g.json {
		err = writeJSON(stdout, p.ToJSON(eng.Describe()))
	} else {
		_, err = fmt.Fprintf(stdout, "Run %q on %s:\n\n%s", cfg.Run.Name, eng.Describe(), p)
	}
	if err == nil && detailed && p.Changes() {
		return exitError{2}
	}
	return err
}

// applyJSON is `runner apply -json`'s document: the plan carried out, and
// the outcome.
type applyJSON struct {
	Plan    plan.JSON         `json:"plan"`
	Applied bool              `json:"applied"`
	IDs     map[string]string `json:"ids"`
	Error   string            `json:"error,omitempty"`
	Seconds float64           `json:"seconds"`
}

func cmdApply(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var auto bool
	cfg, _, eng, err := engineCommand(ctx, g, "apply", args, stderr, both(jsonFlag(g), lockFlag(g), func(fs *flag.FlagSet) {
		fs.BoolVar(&auto, "auto-approve", false, "do not ask before a plan that weakens isolation or deletes an agent")
	}), 0, "")
	if err != nil {
		return jsonConfigError(g, stdout, err)
	}
	defer eng.Close()
	pr := g.prompt
	start := time.Now()
	progress := stdout
	if g.json {
		progress = stderr // stdout holds one JSON document
	}
	r := newRunner(g, eng, progress)
	r.Approve = func(p plan.Plan) error {
		if !p.Changes() {
			return nil
		}
		if g.json {
			// As Terraform: a machine-readable apply cannot ask.
			if approvalReason(p) != "" && pr.tty && !auto {
				return fmt.Errorf("this plan needs a confirmation (%s), which apply -json cannot ask: review `runner plan %s`, then apply -json -auto-approve", approvalReason(p), cfg.File)
			}
			return nil
		}
		fmt.Fprintf(stdout, "Run %q on %s:\n\n%s\n", cfg.Run.Name, eng.Describe(), p)
		if err := approve(pr, p, auto); err != nil {
			fmt.Fprintln(stdout, "Apply cancelled: nothing was changed.")
			return exitError{1}
		}
		return nil
	}
	res, err := r.Apply(ctx, cfg)
	if g.json {
		out := applyJSON{Plan: res.Plan.ToJSON(eng.Describe()), Applied: err == nil, IDs: res.IDs, Seconds: time.Since(start).Seconds()}
		if out.IDs == nil {
			out.IDs = map[string]string{}
		}
		if err != nil {
			out.Error = err.Error()
		}
		if werr := writeJSON(stdout, out); werr != nil {
			return werr
		}
		if err != nil {
			return exitError{1}
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !res.Plan.Changes() {
		fmt.Fprintln(stdout, res.Plan.Summary())
		return nil
	}
	fmt.Fprintf(stdout, "\nApply complete after %s: %d created, %d updated in place, %d replaced, %d deleted, %d unchanged.\n",
		time.Since(start).Round(10*time.Millisecond), res.Plan.Count("create"), res.Plan.Count("update"), res.Plan.Count("replace"), res.Plan.Count("delete"), res.Plan.Count("keep"))
	return nil
}

func cmdDestroy(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var auto, discard bool
	t, err := runTarget(ctx, g, "destroy", args, stderr, both(lockFlag(g), func(fs *flag.FlagSet) {
		fs.BoolVar(&auto, "auto-approve", false, "do not ask before destroying (a terminal asks; CI never does)")
		fs.BoolVar(&discard, "discard-work", false, "throw away the agents' workspaces without fetching their commits")
	}), 0)
	if err != nil {
		return err
	}
	defer t.eng.Close()
	run := t.cfg.Run.Name
	list, err := t.eng.List(ctx, run)
	if err != nil {
		return err
	}
	if len(list) > 0 && !auto && g.prompt.tty {
		fmt.Fprintf(stdout, "Run %q on %s: %s will be destroyed (%s), with the run's state on this host (its audit log is archived).\n\n",
			run, t.eng.Describe(), plural(len(list), "container"), agentList(list))
		if err := g.prompt.confirm("Do you really want to destroy this run?"); err != nil {
			fmt.Fprintln(stdout, "Destroy cancelled: nothing was removed.")
			return exitError{1}
		}
	}
	n, err := newRunner(g, t.eng, stdout).DestroyWith(ctx, run, runner.DestroyOptions{DiscardWork: discard})
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stdout, "Run %q has nothing to destroy.\n", run)
		return nil
	}
	fmt.Fprintf(stdout, "Destroy complete: run %q, %s removed.\n", run, plural(n, "container"))
	return nil
}

func agentList(list []engine.Container) string {
	var names []string
	for _, c := range list {
		names = append(names, c.Agent)
	}
	return "agents " + strings.Join(names, ", ")
}
