package config

import (
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/hashicorp/hcl/v2"
	"github.com/runner-dev/runner/internal/names"
	"github.com/zclconf/go-cty/cty"
)

// Limits on agent resources. The minimum memory is Docker's; the minimum CPU
// share keeps NanoCPUs from rounding to 0, which engines read as "no limit".
const (
	minMemory  = 6 << 20
	minTmpfs   = 1 << 20
	minCPUs    = 0.01
	maxCPUs    = 64
	minPids    = 16
	maxPids    = 32768
	maxCount   = 64
	maxUserID  = math.MaxUint32 - 1 // (uid_t)-1 means "no change" to the kernel
	nanoPerCPU = 1e9
)

var runSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "engine"},
		{Name: "require_rootless"},
		{Name: "accept_unenforced"},
		{Name: "egress_default"},
		{Name: "runtime"},
	},
}

var agentSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "image"},
		{Name: "command", Required: true},
		{Name: "env"},
		{Name: "user"},
		{Name: "memory"},
		{Name: "cpus"},
		{Name: "pids"},
		{Name: "network"},
		{Name: "workdir"},
		{Name: "tmp_size"},
		{Name: "home_size"},
		{Name: "count"},
		{Name: "send_to"},
		{Name: "brief"},
		{Name: "restart"},
		{Name: "max_restarts"},
		{Name: "runtime"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "mount"}, {Type: "checkin"}, {Type: "egress"}, {Type: "secret", LabelNames: []string{"name"}}, {Type: "workspace"}},
}

var mountSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "source", Required: true},
		{Name: "target", Required: true},
		{Name: "read_only"},
		{Name: "allow_sensitive"},
	},
}

func (d *decoder) checkName(kind, name string, rng hcl.Range) bool {
	if err := names.Check(kind, name); err != nil {
		d.errorf(rng, fmt.Sprintf("Invalid %s name", kind), "%s.", sentence(err.Error()))
		return false
	}
	return true
}

// sentence capitalises the first letter of an error message.
func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (d *decoder) run(blocks []*hcl.Block) Run {
	if len(blocks) == 0 {
		d.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing run block",
			Detail:   `An agents file needs exactly one run block, which names the run: run "NAME" {}.`,
		})
		return Run{}
	}
	for _, b := range blocks[1:] {
		d.errorf(b.DefRange, "Duplicate run block",
			"The run is already declared at %s; a file holds exactly one run. Put other runs in their own files.", at(blocks[0].DefRange))
	}
	b := blocks[0]
	r := Run{Name: b.Labels[0], Engine: "docker", DeclRange: b.DefRange}
	d.checkName("run", r.Name, b.LabelRanges[0])
	content, diags := b.Body.Content(runSchema)
	d.diags = append(d.diags, diags...)
	s := scope{ctx: d.ctx}
	attrs := content.Attributes

	if v, ok := d.str(s, attrs["engine"], false); ok {
		if v != "docker" && v != "containerd" && v != "podman" {
			d.fail(s, attrs["engine"].Expr, "Unsupported engine",
				`Engine %q is not supported. Use "docker" (also rootless Docker), "podman" (rootless Podman's Docker-compatible API) or "containerd".`, v)
		}
		r.Engine = v
	}
	if v, ok := d.boolean(s, attrs["require_rootless"]); ok {
		r.RequireRootless = v
	}
	if attr := attrs["accept_unenforced"]; attr != nil {
		list, _ := d.strings(s, attr, false)
		for i, v := range list {
			if v != "memory" && v != "cpus" && v != "pids" {
				d.fail(s, elemExpr(attr, i), "Unknown limit",
					`%q is not a limit. accept_unenforced takes "memory", "cpus" and "pids".`, v)
				continue
			}
			if !slices.Contains(r.AcceptUnenforced, v) {
				r.AcceptUnenforced = append(r.AcceptUnenforced, v)
			}
		}
		slices.Sort(r.AcceptUnenforced)
	}
	r.EgressDefault = d.egressDefault(s, attrs["egress_default"])
	r.Runtime = d.runtime(s, attrs["runtime"], "")
	d.runRuntime = r.Runtime
	return r
}

// agentBlock is an agent block whose schema has been checked; it is
// evaluated once per count instance.
type agentBlock struct {
	block    *hcl.Block
	content  *hcl.BodyContent
	mounts   []*hcl.BodyContent
	checkins []checkinBlock
	egress   []egressBlock // at most one
	secrets  []secretBlock
	// workspace is at most one block too.
	workspace []workspaceBlock
}

func (d *decoder) agents(blocks []*hcl.Block) []Agent {
	if len(blocks) == 0 {
		d.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No agents",
			Detail:   `Declare at least one agent: agent "NAME" { command = ["..."] }.`,
		})
		return nil
	}
	type origin struct {
		block   *hcl.Block
		counted bool
	}
	seen := map[string]origin{}
	var out []Agent
	for _, b := range blocks {
		base := b.Labels[0]
		// A bad name is reported, but the body is still checked so that one
		// run shows every error.
		nameOK := d.checkName("agent", base, b.LabelRanges[0])
		ab := agentBlock{block: b}
		var diags hcl.Diagnostics
		ab.content, diags = b.Body.Content(agentSchema)
		d.diags = append(d.diags, diags...)
		for _, blk := range ab.content.Blocks {
			switch blk.Type {
			case "mount":
				mc, diags := blk.Body.Content(mountSchema)
				d.diags = append(d.diags, diags...)
				ab.mounts = append(ab.mounts, mc)
			case "checkin":
				cc, diags := blk.Body.Content(checkinSchema)
				d.diags = append(d.diags, diags...)
				cb := checkinBlock{block: blk, content: cc}
				cb.triggerOK = d.checkTrigger(cb)
				ab.checkins = append(ab.checkins, cb)
			case "egress":
				d.readEgressBlock(blk, &ab)
			case "secret":
				d.readSecretBlock(blk, &ab)
			case "workspace":
				d.readWorkspaceBlock(blk, &ab)
			}
		}

		countAttr := ab.content.Attributes["count"]
		n, ok := d.count(countAttr)
		if !ok {
			n = 1 // still check the body once, as instance 0
			// The names this block makes are unknown, so send_to patterns
			// cannot be checked against them.
			d.namesUnknown = true
		}
		counted := countAttr != nil
		if nameOK && !counted {
			nameOK = d.checkReserved(base, b.LabelRanges[0])
		}
		var clashes []string // names an earlier block already has
		var clashWith origin
		for i := range n {
			name, s := base, scope{ctx: d.ctx}
			if counted {
				// Names start at 1 and do not change when count grows, so
				// raising count only adds agents.
				name = fmt.Sprintf("%s-%d", base, i+1)
				s = scope{ctx: d.ctx.NewChild(), counted: true}
				s.ctx.Variables = map[string]cty.Value{
					"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(i))}),
				}
				if nameOK && !names.Valid(name) {
					d.errorf(b.LabelRanges[0], "Invalid agent name",
						"With count, this block makes agents named %s-1 to %s-%d, and %q does not match the name rule %s (at most 40 characters). Shorten the name.",
						base, base, n, name, names.Pattern)
					nameOK = false
				}
			}
			if prev, dup := seen[name]; dup {
				if len(clashes) == 0 {
					clashWith = prev
				}
				if prev.block == clashWith.block {
					clashes = append(clashes, name)
				}
			} else {
				seen[name] = origin{b, counted}
				d.agentNames = append(d.agentNames, name)
			}
			if a, ok := d.agent(s, ab, name); ok {
				out = append(out, a)
			}
		}
		if len(clashes) > 0 {
			how := ""
			if clashWith.counted {
				how = " with count"
			}
			d.errorf(b.LabelRanges[0], "Duplicate agent name",
				"%s already used by agent %q%s at %s. Agent names must be unique, including the NAME-1, NAME-2, ... names that count makes: rename one of the blocks.",
				nameList(clashes), clashWith.block.Labels[0], how, at(clashWith.block.DefRange))
		}
	}
	slices.SortFunc(out, func(a, b Agent) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// count returns how many instances an agent block makes.
func (d *decoder) count(attr *hcl.Attribute) (int, bool) {
	if attr == nil {
		return 1, true
	}
	c, ok := d.integer(scope{ctx: d.ctx}, attr, 1, maxCount, "To run no agent of this kind, remove the block.", true)
	return int(c), ok
}

// nameList writes `The name "a" is` or `The names "a", "b" and "c" are`.
func nameList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return "The name " + q[0] + " is"
	}
	return "The names " + strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1] + " are"
}

func (d *decoder) agent(s scope, ab agentBlock, name string) (Agent, bool) {
	errs := len(d.diags.Errs())
	a := Agent{
		Name:        name,
		Image:       DefaultImage,
		Memory:      DefaultMemory,
		NanoCPUs:    DefaultCPUs * nanoPerCPU,
		Pids:        DefaultPids,
		Network:     DefaultNetwork,
		Workdir:     DefaultWorkdir,
		TmpSize:     DefaultTmpSize,
		HomeSize:    DefaultTmpSize,
		Restart:     DefaultRestart,
		MaxRestarts: DefaultMaxRestarts,
		DeclRange:   ab.block.DefRange,
	}
	attrs := ab.content.Attributes

	if v, ok := d.str(s, attrs["image"], false); ok {
		if _, err := reference.ParseNormalizedNamed(v); err != nil {
			d.fail(s, attrs["image"].Expr, "Invalid image reference",
				`%q is not an image reference (%s). Use NAME[:TAG] or NAME@DIGEST, e.g. %q.`, v, err, DefaultImage)
		}
		a.Image = v
	}
	if attr := attrs["command"]; attr != nil {
		a.Command = d.command(s, attr)
	}
	if attr := attrs["env"]; attr != nil {
		a.Env = d.env(s, attr)
	}
	if attr := attrs["user"]; attr != nil {
		if v, ok := d.str(s, attr, false); ok {
			if u, summary, detail := parseUser(v); summary != "" {
				d.fail(s, attr.Expr, summary, "%s", detail)
			} else {
				a.User = u
			}
		}
	}
	if v, ok := d.size(s, attrs["memory"], minMemory, "the engine's minimum"); ok {
		a.Memory = v
	}
	if v, ok := d.size(s, attrs["tmp_size"], minTmpfs, "a size of 0 would mean an unbounded tmpfs"); ok {
		a.TmpSize = v
	}
	if v, ok := d.size(s, attrs["home_size"], minTmpfs, "a size of 0 would mean an unbounded tmpfs"); ok {
		a.HomeSize = v
	}
	if attr := attrs["cpus"]; attr != nil {
		if f, ok := d.number(s, attr, false); ok {
			c, _ := f.Float64()
			if c < minCPUs || c > maxCPUs {
				d.fail(s, attr.Expr, "Invalid cpus",
					"cpus must be from %g to %d (fractions allowed, e.g. 0.5); got %s.", minCPUs, maxCPUs, f.Text('g', 10))
			} else {
				a.NanoCPUs = int64(math.Round(c * nanoPerCPU))
			}
		}
	}
	if attr := attrs["pids"]; attr != nil {
		if v, ok := d.integer(s, attr, minPids, maxPids, "It caps the number of processes in the container.", false); ok {
			a.Pids = v
		}
	}
	if attr := attrs["network"]; attr != nil {
		if v, ok := d.str(s, attr, false); ok {
			if v != "none" && v != "bridge" {
				d.fail(s, attr.Expr, "Unsupported network",
					`Network %q is not supported. Use "none" (no network; the relay still works) or "bridge" (outbound access through the engine's NAT).`, v)
			}
			a.Network = v
		}
	}
	if attr := attrs["workdir"]; attr != nil {
		if v, ok := d.str(s, attr, false); ok {
			if !path.IsAbs(v) || path.Clean(v) != v || strings.ContainsRune(v, 0) {
				d.fail(s, attr.Expr, "Invalid workdir",
					`workdir must be a clean absolute path in the container, such as %q; got %q.`, DefaultWorkdir, v)
			}
			a.Workdir = v
		}
	}
	if attr := attrs["restart"]; attr != nil {
		if v, ok := d.str(s, attr, false); ok {
			switch v {
			case RestartOnFailure, RestartAlways, RestartNever:
				a.Restart, a.RestartSet = v, true
			default:
				d.fail(s, attr.Expr, "Unsupported restart policy",
					`restart %q is not a policy. Use "on-failure" (restart the command after a non-zero exit status or a signal; the default), "always" (also after exit status 0) or "never".`, v)
			}
		}
	}
	if attr := attrs["max_restarts"]; attr != nil {
		if v, ok := d.integer(s, attr, 0, MaxMaxRestarts, "It bounds how often the agent's command is restarted over the container's life; 0 never restarts it.", false); ok {
			a.MaxRestarts = int(v)
		}
	}
	a.Runtime = d.runtime(s, attrs["runtime"], d.runRuntime)
	if a.Runtime == RuntimeRunsc && a.Network == "bridge" {
		// scripts/gvisor-docker.sh registers runsc with --network=none:
		// gVisor's own network stack cannot take over the container's
		// network namespace on these machines, so bridge would silently
		// be no network.
		rng := a.DeclRange
		if attr := attrs["network"]; attr != nil {
			rng = attr.Expr.Range()
		}
		d.errorf(rng, "network \"bridge\" not supported on gVisor",
			`runtime "runsc" runs agents with loopback only (gVisor is registered with --network=none); use network = "none", where egress goes through the run's proxy, or runtime = "runc" for bridge.`)
	}
	if a.Runtime == RuntimeRunsc {
		switch attr := attrs["pids"]; {
		case attr == nil:
			a.Pids = DefaultPidsRunsc
		case a.Pids < MinPidsRunsc:
			d.fail(s, attr.Expr, "pids too low for gVisor",
				"On runtime \"runsc\" the pids limit counts gVisor's own host threads as well as the agent's (about 220 with nothing running) and reaching it stops the whole sandbox: use at least %d, or leave pids out for %d.", MinPidsRunsc, DefaultPidsRunsc)
		}
	}
	a.Egress = d.egress(s, ab, a.Network, attrs["network"])
	a.Mounts = d.mounts(s, ab)
	a.Secrets = d.secrets(s, ab, &a)
	a.Workspace = d.workspace(s, ab, a.Mounts)
	a.SendTo = d.sendTo(s, attrs["send_to"])
	a.Checkins = d.checkins(s, ab)
	if v, ok := d.str(s, attrs["brief"], false); ok {
		if summary, detail := checkText("brief", emptyBrief, v); summary != "" {
			d.fail(s, attrs["brief"].Expr, summary, "%s", detail)
		}
		a.Brief = v
	}
	return a, len(d.diags.Errs()) == errs
}

func (d *decoder) command(s scope, attr *hcl.Attribute) []string {
	argv, ok := d.strings(s, attr, true)
	switch {
	case !ok:
		return nil
	case len(argv) == 0:
		d.fail(s, attr.Expr, "Empty command",
			`command is the argv the agent runs, e.g. ["claude"] or ["sh", "-c", "..."]; it needs at least one element.`)
	case argv[0] == "":
		d.fail(s, elemExpr(attr, 0), "Empty program name",
			"The first element of command names the program to run and cannot be empty.")
	}
	for i, arg := range argv {
		if strings.ContainsRune(arg, 0) {
			d.fail(s, elemExpr(attr, i), "NUL byte in command",
				"Element %d of command contains a NUL byte, which cannot be passed to a program. Remove it.", i)
		}
	}
	return argv
}

// envKey is the portable environment variable name rule.
var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (d *decoder) env(s scope, attr *hcl.Attribute) map[string]string {
	v := d.value(s, attr, cty.Map(cty.String), false)
	if v == cty.NilVal {
		return nil
	}
	env := map[string]string{}
	vals := v.AsValueMap()
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		val := vals[k]
		switch {
		case !envKey.MatchString(k):
			d.fail(s, keyExpr(s, attr, k, false), "Invalid environment variable name",
				"%q is not a valid variable name. Use letters, digits and underscores, not starting with a digit.", k)
		case strings.HasPrefix(k, "RUNNER_"):
			d.fail(s, keyExpr(s, attr, k, false), "Reserved environment variable",
				"Names starting with RUNNER_ are reserved for runner itself inside the container. Rename %q.", k)
		case val.IsNull():
			d.fail(s, keyExpr(s, attr, k, true), "Null environment value",
				"The value of %q is null. Give it a string, or remove it.", k)
		case strings.ContainsRune(val.AsString(), 0):
			d.fail(s, keyExpr(s, attr, k, true), "NUL byte in environment value",
				"The value of %q contains a NUL byte, which cannot be put in an environment. Remove it.", k)
		default:
			env[k] = val.AsString()
		}
	}
	return env
}

// size reads a byte size such as "256MiB" (or a plain number of bytes).
func (d *decoder) size(s scope, attr *hcl.Attribute, lo int64, why string) (int64, bool) {
	str, ok := d.str(s, attr, false)
	if !ok {
		return 0, false
	}
	n, err := parseSize(str)
	if err != nil {
		d.fail(s, attr.Expr, fmt.Sprintf("Invalid %s", attr.Name), "%s.", sentence(err.Error()))
		return 0, false
	}
	if n < lo {
		if unitless(str) && n > 0 {
			// memory = 256 is 256 bytes: the unit was forgotten.
			d.fail(s, attr.Expr, fmt.Sprintf("Invalid %s", attr.Name),
				"A number without a unit is bytes, and %s must be at least %s (%s): add a unit, e.g. %s = \"%sMiB\".", attr.Name, formatSize(lo), why, attr.Name, str)
			return 0, false
		}
		d.fail(s, attr.Expr, fmt.Sprintf("Invalid %s", attr.Name),
			"%s must be at least %s (%s); got %q.", attr.Name, formatSize(lo), why, str)
		return 0, false
	}
	return n, true
}

// runtime reads a runtime attribute: "runc" (the engine's default runtime,
// the host kernel) or "runsc" (gVisor's user-space kernel); def when absent.
func (d *decoder) runtime(s scope, attr *hcl.Attribute, def string) string {
	v, ok := d.str(s, attr, false)
	if !ok {
		return def
	}
	if v != RuntimeRunc && v != RuntimeRunsc {
		d.fail(s, attr.Expr, "Unsupported runtime",
			`Runtime %q is not supported. Use "runsc" (gVisor: the agent's system calls go to a user-space kernel; the engine must offer it, see runner doctor) or "runc" (the engine's default runtime).`, v)
		return def
	}
	return v
}
