package config

import (
	"fmt"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runner-dev/runner/internal/egress/rules"
)

// Secret is a `secret "NAME" { ... }` block of an agent. Its value is never
// in the Config (except Source.Value, a sensitive variable's, which prints
// as "(sensitive)"): internal/secrets resolves the source at apply.
// Exactly one of Inject and File is set.
type Secret struct {
	Name   string
	Source SecretSource
	// Inject: the agent's environment variable Name holds a stand-in, and
	// the egress proxy puts the real value in Header toward Hosts.
	Inject *Inject
	// File: the value is a file at this container path (SecretsDir/BASE),
	// on tmpfs, mode 0400, owned by the agent's uid.
	File string
	// Refresh is how often a from_command or from_file source is read
	// again while the run is up; 0 is only at apply.
	Refresh   time.Duration
	DeclRange hcl.Range
}

// SecretSource is where a secret's value comes from: exactly one kind.
type SecretSource struct {
	Kind    string        // SourceEnv, SourceFile, SourceCommand or SourceValue
	Env     string        // SourceEnv: the operator's environment variable
	File    string        // SourceFile: absolute host path
	Command []string      // SourceCommand: argv, run without a shell
	Timeout time.Duration // SourceCommand: how long it may take
	Value   Sensitive     // SourceValue: a sensitive variable's value
	// Range is the source attribute's expression, for errors found when the
	// source is read (internal/secrets).
	Range hcl.Range
}

// Inject is a secret's inject block.
type Inject struct {
	Hosts  []string // egress entry syntax: names, *.suffix, with optional :port
	Header string   // canonical header name, e.g. "X-Api-Key", "Authorization"
	Scheme string   // "Bearer" or "token" with Authorization; "" otherwise
	// Rules is Hosts compiled as an allow-list: the proxy asks it whether a
	// CONNECT's host carries this secret.
	Rules     *rules.Rules
	DeclRange hcl.Range
}

// Source kinds.
const (
	SourceEnv     = "from_env"
	SourceFile    = "from_file"
	SourceCommand = "from_command"
	SourceValue   = "value"
)

// SecretsDir is the container directory file secrets are in: one
// read-only tmpfs-backed directory per agent.
const SecretsDir = "/run/secrets"

// Bounds of from_command's timeout and of refresh.
const (
	DefaultCommandTimeout = 30 * time.Second
	MaxCommandTimeout     = 5 * time.Minute
	MinRefresh            = time.Minute
	MaxRefresh            = 24 * time.Hour
)

// Sensitive is a value that must never be printed: every formatting of it
// is "(sensitive)". Reveal returns the value.
type Sensitive struct{ v string }

func (s Sensitive) String() string                { return "(sensitive)" }
func (s Sensitive) GoString() string              { return "(sensitive)" }
func (s Sensitive) MarshalJSON() ([]byte, error)  { return []byte(`"(sensitive)"`), nil }
func (s Sensitive) MarshalText() ([]byte, error)  { return []byte("(sensitive)"), nil }
func (s Sensitive) Format(f fmt.State, verb rune) { fmt.Fprint(f, "(sensitive)") }
func (s Sensitive) Reveal() string                { return s.v }
func (s Sensitive) IsZero() bool                  { return s.v == "" }
func NewSensitive(v string) Sensitive             { return Sensitive{v} }
func (s Sensitive) Equal(o Sensitive) bool        { return s.v == o.v }
func (s *Sensitive) UnmarshalJSON(b []byte) error {
	return fmt.Errorf("sensitive values are never decoded")
}

// Binding is what the config hash covers of a secret: its name, kind and
// binding, never its value (nor where the value comes from, so that a new
// source of the same secret is a rotation, not a new container).
func (s Secret) Binding() string {
	if s.Inject != nil {
		return fmt.Sprintf("secret %s inject hosts=%q header=%s scheme=%q", s.Name, s.Inject.Hosts, s.Inject.Header, s.Inject.Scheme)
	}
	return fmt.Sprintf("secret %s file=%s", s.Name, s.File)
}

var secretSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: SourceEnv}, {Name: SourceFile}, {Name: SourceCommand}, {Name: SourceValue},
		{Name: "file"}, {Name: "refresh"}, {Name: "timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "inject"}},
}

var injectSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "host", Required: true},
		{Name: "header", Required: true},
		{Name: "scheme"},
	},
}

// secretBlock is a secret block whose schema has been checked.
type secretBlock struct {
	block   *hcl.Block
	content *hcl.BodyContent
	inject  []*hcl.Block
	injectC *hcl.BodyContent
}

func (d *decoder) readSecretBlock(blk *hcl.Block, ab *agentBlock) {
	c, diags := blk.Body.Content(secretSchema)
	d.diags = append(d.diags, diags...)
	sb := secretBlock{block: blk, content: c}
	for _, ib := range c.Blocks {
		if len(sb.inject) > 0 {
			d.errorf(ib.DefRange, "Duplicate inject block",
				"This secret already has an inject block at %s. List every host in its host attribute.", at(sb.inject[0].DefRange))
			continue
		}
		sb.inject = append(sb.inject, ib)
		sb.injectC, diags = ib.Body.Content(injectSchema)
		d.diags = append(d.diags, diags...)
	}
	ab.secrets = append(ab.secrets, sb)
}

// reservedEnv are environment variables runner sets itself in a container
// with egress or secrets: a secret may not take their name.
var reservedEnv = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
	"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
}

var secretFileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// secrets evaluates an agent instance's secret blocks.
func (d *decoder) secrets(s scope, ab agentBlock, a *Agent) []Secret {
	var out []Secret
	seen := map[string]hcl.Range{}
	files := map[string]hcl.Range{}
	for _, sb := range ab.secrets {
		b := sb.block
		name := b.Labels[0]
		rng := b.LabelRanges[0]
		ok := true
		switch {
		case !envKey.MatchString(name):
			d.errorf(rng, "Invalid secret name",
				"%q is not a valid secret name. A secret is named like the environment variable that holds its stand-in: letters, digits and underscores, not starting with a digit.", name)
			ok = false
		case strings.HasPrefix(name, "RUNNER_") || slices.Contains(reservedEnv, strings.ToUpper(name)):
			d.errorf(rng, "Reserved secret name",
				"Runner sets %s in the container itself. Give the secret another name.", name)
			ok = false
		}
		if prev, dup := seen[name]; dup {
			d.errorf(rng, "Duplicate secret",
				"This agent already has a secret named %q at %s. Remove one of the blocks.", name, at(prev))
			ok = false
		}
		seen[name] = b.DefRange
		sec := Secret{Name: name, DeclRange: b.DefRange}
		if !d.secretSource(s, sb, &sec) {
			ok = false
		}
		attrs := sb.content.Attributes
		fileAttr := attrs["file"]
		switch {
		case len(sb.inject) > 0 && fileAttr != nil:
			d.errorf(sb.inject[0].DefRange, "Secret both injected and a file",
				"A secret is either injected by the egress proxy (inject) or a file in the container (file = %q), not both: declare two secrets if the agent needs both.", fileAttrText(fileAttr))
			ok = false
		case len(sb.inject) == 0 && fileAttr == nil:
			d.errorf(b.DefRange, "Secret with no destination",
				"Say how the agent gets secret %q: an inject { host = \"api.example.com\", header = \"x-api-key\" } block (the proxy puts it on the wire; the agent sees a stand-in), or file = \"%s/%s\" (a tmpfs file only this agent can read). Putting it in env would show it in docker inspect.", name, SecretsDir, strings.ToLower(name))
			ok = false
		case len(sb.inject) > 0:
			if inj := d.inject(s, sb, a); inj != nil {
				sec.Inject = inj
				if _, clash := a.Env[name]; clash {
					d.errorf(rng, "Secret and env variable share a name",
						"The agent's env already sets %s; the secret's stand-in goes in that variable. Remove it from env.", name)
					ok = false
				}
			} else {
				ok = false
			}
		default:
			if f, fok := d.str(s, fileAttr, true); fok {
				base := path.Base(f)
				switch {
				case base == "runner-credential":
					d.fail(s, fileAttr.Expr, "Reserved secret file",
						`%s/runner-credential is where runner mounts the agent's relay credential. Give the secret another file name.`, SecretsDir)
					ok = false
				case path.Dir(f) != SecretsDir || !secretFileName.MatchString(base):
					d.fail(s, fileAttr.Expr, "Invalid secret file",
						`file must be a plain file name in %s, such as "%s/deploy" (letters, digits, ".", "_" and "-"); got %q. Runner mounts that one directory, read-only and on tmpfs, into this agent's container only.`, SecretsDir, SecretsDir, f)
					ok = false
				case files[f] != hcl.Range{}:
					d.fail(s, fileAttr.Expr, "Duplicate secret file",
						"Another secret of this agent is already at %q (%s). Give each its own file.", f, at(files[f]))
					ok = false
				default:
					files[f] = fileAttr.Expr.Range()
					sec.File = f
				}
			} else {
				ok = false
			}
		}
		if attr := attrs["refresh"]; attr != nil {
			if k := sec.Source.Kind; k != SourceCommand && k != SourceFile && k != "" {
				d.errorf(attr.NameRange, "refresh with a fixed source",
					"refresh reads a from_command or from_file source again on a schedule; a %s value does not change while runner runs. Remove refresh.", k)
				ok = false
			} else if v, vok := d.secretDuration(s, attr, MinRefresh, MaxRefresh); vok {
				sec.Refresh = v
			} else {
				ok = false
			}
		}
		if ok {
			out = append(out, sec)
		}
	}
	for _, m := range a.Mounts {
		if m.Target == SecretsDir || strings.HasPrefix(m.Target+"/", SecretsDir+"/") || strings.HasPrefix(SecretsDir+"/", m.Target+"/") {
			if len(files) > 0 {
				d.errorf(m.SourceRange, "Mount overlaps the secrets directory",
					"This agent has file secrets in %s, and mount target %q overlaps it. Mount it elsewhere.", SecretsDir, m.Target)
			}
		}
	}
	slices.SortFunc(out, func(x, y Secret) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func fileAttrText(attr *hcl.Attribute) string {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
		return SecretsDir + "/NAME"
	}
	return v.AsString()
}

// secretSource reads the one source attribute of a secret block.
func (d *decoder) secretSource(s scope, sb secretBlock, sec *Secret) bool {
	attrs := sb.content.Attributes
	var given []*hcl.Attribute
	for _, k := range []string{SourceEnv, SourceFile, SourceCommand, SourceValue} {
		if a := attrs[k]; a != nil {
			given = append(given, a)
		}
	}
	switch len(given) {
	case 0:
		d.errorf(sb.block.DefRange, "Secret with no source",
			`Secret %q needs exactly one source: from_env = "VAR" (the operator's environment), from_file = "~/.config/x/key", from_command = ["gh", "auth", "token"] (an argv, no shell), or value = var.NAME (a sensitive variable).`, sec.Name)
		return false
	case 1:
	default:
		names := make([]string, len(given))
		for i, a := range given {
			names[i] = a.Name
		}
		d.errorf(given[1].NameRange, "Secret with two sources",
			"Secret %q sets %s; give it exactly one source, so it is clear which value the agent gets.", sec.Name, strings.Join(names, " and "))
		return false
	}
	attr := given[0]
	src := SecretSource{Kind: attr.Name, Range: attr.Expr.Range()}
	ok := true
	if t := attrs["timeout"]; t != nil && attr.Name != SourceCommand {
		d.errorf(t.NameRange, "timeout without from_command", "timeout bounds a from_command; this secret has %s. Remove timeout.", attr.Name)
		ok = false
	}
	switch attr.Name {
	case SourceEnv:
		v, vok := d.str(s, attr, true)
		switch {
		case !vok:
			return false
		case !envKey.MatchString(v):
			d.fail(s, attr.Expr, "Invalid from_env", "from_env names an environment variable of the shell that runs runner: letters, digits and underscores; got %q.", v)
			return false
		}
		src.Env = v
	case SourceFile:
		v, vok := d.str(s, attr, true)
		if !vok {
			return false
		}
		if v == "" || strings.ContainsRune(v, 0) {
			d.fail(s, attr.Expr, "Invalid from_file", `from_file is a host file holding the value, such as "~/.config/anthropic/key"; got %q.`, v)
			return false
		}
		src.File = d.hostPath(v)
	case SourceCommand:
		argv, vok := d.strings(s, attr, true)
		switch {
		case !vok:
			return false
		case len(argv) == 0 || argv[0] == "":
			d.fail(s, attr.Expr, "Empty from_command", `from_command is an argv run on the host without a shell, e.g. ["gh", "auth", "token"]; it needs a program name.`)
			return false
		}
		for i, arg := range argv {
			if strings.ContainsRune(arg, 0) {
				d.fail(s, elemExpr(attr, i), "NUL byte in from_command", "Element %d contains a NUL byte, which cannot be passed to a program.", i)
				return false
			}
		}
		src.Command = argv
		src.Timeout = DefaultCommandTimeout
		if t := attrs["timeout"]; t != nil {
			v, tok := d.secretDuration(s, t, time.Second, MaxCommandTimeout)
			if !tok {
				return false
			}
			src.Timeout = v
		}
	case SourceValue:
		v, vok := d.sensitiveValue(s, attr)
		if !vok {
			return false
		}
		src.Value = NewSensitive(v)
	}
	sec.Source = src
	return ok
}

// hostPath makes a host path absolute: ~/ is the operator's home, a
// relative path is relative to the agents file's directory.
func (d *decoder) hostPath(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	return filepath.Clean(p)
}

// sensitiveValue evaluates value = var.NAME: it must be a sensitive
// variable, so the value is never printed and never sits in the file.
func (d *decoder) sensitiveValue(s scope, attr *hcl.Attribute) (string, bool) {
	if !d.refsOK(s, attr.Expr) {
		return "", false
	}
	val, diags := attr.Expr.Value(s.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return "", false
	}
	if !val.ContainsMarked() {
		d.fail(s, attr.Expr, "Secret value not sensitive",
			"value takes a variable declared with sensitive = true (value = var.NAME), so that runner never prints it and the file never holds it. Declare the variable sensitive, or use from_env, from_file or from_command.")
		return "", false
	}
	val, _ = val.UnmarkDeep()
	conv, err := convert.Convert(val, cty.String)
	if err != nil || conv.IsNull() {
		d.errorf(attr.Expr.Range(), "Invalid secret value", "value must be a string (the variable's value is not printed).")
		return "", false
	}
	v := conv.AsString()
	if v == "" || strings.ContainsRune(v, 0) {
		d.errorf(attr.Expr.Range(), "Invalid secret value", "The variable's value is empty or holds a NUL byte (it is not printed). Set it with -var, -var-file or RUNNER_VAR_NAME.")
		return "", false
	}
	return v, true
}

func (d *decoder) secretDuration(s scope, attr *hcl.Attribute, lo, hi time.Duration) (time.Duration, bool) {
	str, ok := d.str(s, attr, true)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(str)
	if err != nil || v < lo || v > hi {
		d.fail(s, attr.Expr, "Invalid "+attr.Name,
			`%s must be a duration from %s to %s, such as "55m" or "30s"; got %q.`, attr.Name, lo, hi, str)
		return 0, false
	}
	return v, true
}

// Header forms the proxy can inject. Framing and routing headers are not
// credentials, and a changed Host or length would reroute or desync.
var forbiddenHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Cookie", "Set-Cookie"}

var headerToken = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

// inject reads a secret's inject block and checks its hosts are allowed by
// the agent's egress.
func (d *decoder) inject(s scope, sb secretBlock, a *Agent) *Inject {
	ib, c := sb.inject[0], sb.injectC
	inj := &Inject{DeclRange: ib.DefRange}
	ok := true
	hostAttr := c.Attributes["host"]
	if hostAttr != nil {
		hosts, hok := d.hostList(s, hostAttr)
		ok = ok && hok
		for i, h := range hosts {
			e, err := rules.Parse(h)
			switch {
			case err != nil:
				d.fail(s, elemExpr(hostAttr, i), "Invalid inject host", "%s", period(sentence(err.Error())))
				ok = false
				continue
			case e.Kind == rules.KindIP || e.Kind == rules.KindCIDR:
				d.fail(s, elemExpr(hostAttr, i), "Invalid inject host",
					"An injected credential is bound to a host name (the proxy checks the server's certificate for it); %q is an address. Use the name the agent connects to.", h)
				ok = false
				continue
			}
			if a.Egress == nil {
				d.fail(s, elemExpr(hostAttr, i), "Inject host without egress",
					`This agent has no egress, so it cannot reach %q and the secret would never be used. Allow it: egress { allow = [%q] } (or the run's egress_default).`, h, h)
				ok = false
				continue
			}
			probe, port := e.Host, e.Port
			if e.Kind == rules.KindWildcard {
				probe = "x." + e.Host
			}
			if port == 0 {
				port = 443
			}
			if v := a.Egress.Rules.CheckName(probe, port); !v.Allowed {
				why := "no allow entry covers it"
				if v.Deny {
					why = fmt.Sprintf("deny entry %q refuses it", v.Rule)
				}
				d.fail(s, elemExpr(hostAttr, i), "Inject host not allowed by egress",
					"The agent's egress does not allow %q (%s), so the credential would never be sent. Add %q to the agent's egress allow list (%s), or fix the host.", h, why, h, at(a.Egress.DeclRange))
				ok = false
			}
		}
		if ok {
			r, err := rules.Compile(hosts, nil)
			if err != nil {
				d.errorf(hostAttr.Expr.Range(), "Invalid inject host", "%s.", sentence(err.Error()))
				ok = false
			}
			inj.Hosts, inj.Rules = hosts, r
		}
	}
	headerAttr, schemeAttr := c.Attributes["header"], c.Attributes["scheme"]
	if h, hok := d.str(s, headerAttr, true); hok {
		canon := textproto.CanonicalMIMEHeaderKey(h)
		switch {
		case !headerToken.MatchString(h):
			d.fail(s, headerAttr.Expr, "Unknown header form",
				`header is an HTTP header name, such as "x-api-key" or "Authorization" (with scheme = "Bearer"); got %q.`, h)
			ok = false
		case slices.Contains(forbiddenHeaders, canon):
			d.fail(s, headerAttr.Expr, "Unknown header form",
				`%s is not a credential header the proxy rewrites (it frames or routes the request). Use the header the API reads its key from, such as "x-api-key" or "Authorization".`, canon)
			ok = false
		default:
			inj.Header = canon
		}
	} else {
		ok = false
	}
	if schemeAttr != nil {
		if sc, sok := d.str(s, schemeAttr, true); sok {
			switch {
			case inj.Header != "" && inj.Header != "Authorization":
				d.fail(s, schemeAttr.Expr, "Unknown header form",
					`scheme goes with header = "Authorization" ("Authorization: Bearer KEY"); %s carries the bare value. Remove scheme.`, inj.Header)
				ok = false
			case sc != "Bearer" && sc != "token":
				d.fail(s, schemeAttr.Expr, "Unknown header form",
					`scheme %q is not supported: use "Bearer" (Anthropic, OpenAI, most APIs) or "token" (GitHub's classic form). Basic needs a user and password and is not injected.`, sc)
				ok = false
			default:
				inj.Scheme = sc
			}
		} else {
			ok = false
		}
	} else if inj.Header == "Authorization" {
		d.fail(s, headerAttr.Expr, "Unknown header form",
			`header = "Authorization" needs a scheme: scheme = "Bearer" sends "Authorization: Bearer KEY". For an API that reads the bare key, name its own header (such as "x-api-key").`)
		ok = false
	}
	if !ok {
		return nil
	}
	return inj
}

// hostList reads host = "name" or host = ["a", "b"].
func (d *decoder) hostList(s scope, attr *hcl.Attribute) ([]string, bool) {
	val, diags := attr.Expr.Value(s.ctx)
	if !diags.HasErrors() && val.IsKnown() && !val.IsNull() && val.Type() == cty.String {
		v, ok := d.str(s, attr, true)
		if !ok {
			return nil, false
		}
		return []string{v}, true
	}
	list, ok := d.strings(s, attr, true)
	if ok && len(list) == 0 {
		d.fail(s, attr.Expr, "Empty inject host", `host names where the credential is sent, e.g. "api.anthropic.com" or ["api.openai.com"].`)
		return nil, false
	}
	return list, ok
}
