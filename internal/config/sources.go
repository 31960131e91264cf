package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/mountsrc"
)

// Sources is the outcome of the mount-source stage: what each agent's mount
// sources resolve to on the host now, and every reason one may not be
// mounted. It is a separate stage from Load because it depends on the host
// at the moment of use, not on the file: plan and apply run it right before
// they build containers, validate runs it to report, and the commands that
// only need the run (status, capture, logs, audit, destroy) never do.
type Sources struct {
	real  map[string][]string // agent -> resolved source per mount, when every one passed
	repos map[string]string   // agent -> its workspace repository, resolved
	diags map[string]hcl.Diagnostics
	all   hcl.Diagnostics
}

// Writer is a writable bind mount from outside the file: one of a running
// container (this run's, before apply replaces or deletes it, or another
// run's). Sources may not nest with it, nor pass through a link in it, as
// with the file's own writable mounts.
type Writer struct {
	// Agent is this run's agent the container belongs to, so its own
	// mounts are judged as the agent's own; for another run, anything no
	// agent name can be (e.g. `run "x" agent "y"`).
	Agent string
	Path  string // the host path the engine mounted
	What  string // for messages: whose container, e.g. `agent "a"'s running container`
}

// CheckSources resolves every mount source of cfg on the host, without
// following any symlink a container could have planted (see mountsrc), and
// checks the resolved path as well as the written one against the paths that
// are never mounted and the operator's secrets. writers are the writable
// mounts of the containers already running (runner lists them from the
// engine); validate has none to give.
func CheckSources(cfg *Config, writers ...Writer) *Sources {
	type ref struct {
		agent string
		m     Mount
	}
	var refs []ref
	var srcs []mountsrc.Source
	for _, a := range cfg.Agents {
		for _, m := range a.Mounts {
			refs = append(refs, ref{a.Name, m})
			srcs = append(srcs, mountsrc.Source{Agent: a.Name, Path: m.Source, Writable: !m.ReadOnly})
		}
	}
	// A workspace's repository is read by git on the host (the clone at
	// apply, fetch, diff), so it gets a mount source's rules: a path an
	// agent could write on the way, or inside, would hand that git
	// agent-written config and hooks.
	nMounts := len(refs)
	for _, a := range cfg.Agents {
		if w := a.Workspace; w != nil {
			refs = append(refs, ref{a.Name, Mount{Source: w.Repo, ReadOnly: true, SourceRange: w.RepoRange, raw: w.raw}})
			srcs = append(srcs, mountsrc.Source{Agent: a.Name, Path: w.Repo})
		}
	}
	c := sourceChecker{forbidden: forbiddenSources(), sensitive: sensitiveSources(), whose: map[mountsrc.Source]string{}}
	for i, r := range refs {
		if srcs[i].Writable {
			c.whose[srcs[i]] = "(" + at(r.m.SourceRange) + ")"
		}
	}
	for _, w := range writers {
		s := mountsrc.Source{Agent: w.Agent, Path: filepath.Clean(w.Path), Writable: true}
		if _, dup := c.whose[s]; !dup && filepath.IsAbs(w.Path) {
			srcs = append(srcs, s)
			c.whose[s] = "of " + w.What
		}
	}
	results := mountsrc.Resolve(srcs, trust())
	s := &Sources{real: map[string][]string{}, repos: map[string]string{}, diags: map[string]hcl.Diagnostics{}}
	for _, a := range cfg.Agents {
		s.real[a.Name] = []string{}
	}
	for i, r := range refs {
		diags := c.check(r.agent, r.m, results[i])
		if i >= nMounts {
			for _, d := range diags {
				d.Summary = strings.Replace(strings.Replace(d.Summary, "Mount source", "Workspace repo", 1), "mount source", "workspace repo", 1)
			}
		}
		switch {
		case diags.HasErrors():
			delete(s.real, r.agent)
		case i >= nMounts:
			s.repos[r.agent] = results[i].Real
		default:
			if reals, ok := s.real[r.agent]; ok {
				s.real[r.agent] = append(reals, results[i].Real)
			}
		}
		s.diags[r.agent] = append(s.diags[r.agent], diags...)
		s.all = append(s.all, diags...)
	}
	s.all = sortDiags(dedup(s.all))
	return s
}

// Diagnostics are every error and warning, in file order.
func (s *Sources) Diagnostics() hcl.Diagnostics { return s.all }

// Agent returns what the agent's mount sources resolve to, in the order of
// its Mounts, or nil with the errors that refuse them.
func (s *Sources) Agent(name string) ([]string, error) {
	if reals, ok := s.real[name]; ok {
		return reals, nil
	}
	return nil, &SourceError{Diags: errorsOnly(s.diags[name])}
}

// WorkspaceRepo is what the agent's workspace repository resolves to, or ""
// when it has none or it was refused (Agent then returns the errors).
func (s *Sources) WorkspaceRepo(agent string) string { return s.repos[agent] }

// Err is nil when every source may be mounted, or a *SourceError.
func (s *Sources) Err() error {
	if !s.all.HasErrors() {
		return nil
	}
	return &SourceError{Diags: errorsOnly(s.all)}
}

func errorsOnly(diags hcl.Diagnostics) hcl.Diagnostics {
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	return errs
}

// SourceError is a refused mount source, as an error. Its diagnostics carry
// file:line:col; print them with WriteDiagnostics for the source snippet.
type SourceError struct {
	Diags hcl.Diagnostics
}

func (e *SourceError) Error() string {
	var lines []string
	for _, d := range e.Diags {
		where := ""
		if d.Subject != nil {
			where = fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		lines = append(lines, where+d.Summary+": "+d.Detail)
	}
	return strings.Join(lines, "\n")
}

type sourceChecker struct {
	forbidden, sensitive []forbiddenPath
	// whose says where each writable mount comes from: the file's line, or
	// the running container (Writer.What).
	whose map[mountsrc.Source]string
}

// writer describes the writable mount w (resolved to real), as seen from a
// mount of agent.
func (c sourceChecker) writer(agent string, w mountsrc.Source, real string) string {
	if strings.HasPrefix(c.whose[w], "of ") {
		return fmt.Sprintf("the writable mount %s %s", real, c.whose[w])
	}
	who := fmt.Sprintf("agent %q's", w.Agent)
	if w.Agent == agent {
		who = "this agent's own"
	}
	return fmt.Sprintf("%s writable mount %s %s", who, real, c.whose[w])
}

// check turns one mount's resolution into diagnostics.
func (c sourceChecker) check(agent string, m Mount, r mountsrc.Result) hcl.Diagnostics {
	var diags hcl.Diagnostics
	fail := func(severity hcl.DiagnosticSeverity, summary, detail string, args ...any) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{
			Severity:    severity,
			Summary:     summary,
			Detail:      fmt.Sprintf(detail, args...),
			Subject:     m.SourceRange.Ptr(),
			Expression:  m.srcExpr,
			EvalContext: m.srcCtx,
		})
	}
	file := m.SourceRange.Filename
	if why := checkSource(m.Source, c.forbidden); why != "" {
		return fail(hcl.DiagError, "Forbidden mount source", "%q %s. Mounting it would let the agent reach outside its container; mount a project directory instead.", m.raw, why)
	}
	sensitive := checkSource(m.Source, c.sensitive)
	if sensitive != "" && !m.AllowSensitive {
		return fail(hcl.DiagError, "Sensitive mount source", "%q %s. An agent given it could read or change them; mount a project directory instead, or, if this agent must have it, add allow_sensitive = true to this mount block.", m.raw, sensitive)
	}

	var we *mountsrc.WalkError
	var le *mountsrc.LinkError
	var owe *mountsrc.OwnerError
	var de *mountsrc.DirError
	var oe *mountsrc.OverlapError
	switch {
	case errors.As(r.Err, &we) && errors.Is(we.Err, fs.ErrNotExist):
		missing := ""
		if we.Path != m.Source {
			missing = fmt.Sprintf(" (%q is missing)", we.Path)
		}
		return fail(hcl.DiagError, "Mount source does not exist", "%q is %s, which does not exist%s. Create it, or fix the path (a relative source is relative to the directory of %s).", m.raw, m.Source, missing, file)
	case errors.As(r.Err, &we):
		return fail(hcl.DiagError, "Cannot read mount source", "%q: %s.", m.raw, we)
	case errors.As(r.Err, &le) || errors.As(r.Err, &owe) || errors.As(r.Err, &de) || errors.As(r.Err, &oe):
		if de != nil && de.Entry != "" {
			diags = fail(hcl.DiagError, "Mount source under an entry someone else owns",
				"%q is reached through %q, which belongs to uid %d and lies in the shared directory %q: its owner can replace it with a symlink between runner's check and the engine's mount. Use a directory that you own.",
				m.raw, de.Entry, de.EntryOwner, de.Dir)
		} else if de != nil {
			diags = fail(hcl.DiagError, "Mount source under a directory others can write",
				"%q is reached through %q, which %s: whoever can write there (an agent it is mounted into, another user) could swap an entry for a symlink between runner's check and the engine's mount. Mount that directory itself rather than something inside it, or make it writable only by you (chmod go-w, or chown it to you).",
				m.raw, de.Dir, dirWhy(de))
		}
		if owe != nil {
			diags = fail(hcl.DiagError, "Mount source passes through someone else's symlink",
				"%q resolves through the symlink %q -> %q, which belongs to uid %d: neither you nor root made it. A container makes its files as its agent's uid (possibly in a directory it could write at an earlier apply), and another local user as theirs; runner follows no one else's symlink on the way to a mount source. Replace the link with the directory itself, or name the real path as the source.",
				m.raw, owe.Link.Path, owe.Link.Target, owe.Link.Owner)
		}
		if le != nil {
			whose := c.writer(agent, le.Writer, le.WriterReal)
			diags = fail(hcl.DiagError, "Mount source passes through a symlink in a writable mount",
				"%q resolves through the symlink %q -> %q, which lies inside %s. A container can write there, so it could have planted the link to redirect this mount to any host path; runner follows no symlink inside a writable mount. Replace the link with the directory itself, or name the real path as the source.",
				m.raw, le.Link.Path, le.Link.Target, whose)
		}
		if errors.As(r.Err, &oe) {
			diags = fail(hcl.DiagError, "Mount source overlaps another agent's writable mount",
				"%q (%s) %s %s. Its container could replace a directory on the way with a symlink and redirect the mount. To share a directory, mount the same source into both agents; otherwise mount separate directories.",
				m.raw, oe.Path, oe.Relation, c.writer(agent, oe.Other, oe.OtherPath))
		}
		return diags
	case r.Err != nil:
		return fail(hcl.DiagError, "Cannot read mount source", "%q: %s.", m.raw, r.Err)
	}

	if why := checkSource(r.Real, c.forbidden); why != "" {
		return fail(hcl.DiagError, "Forbidden mount source", "%q resolves to %s, which %s. Mounting it would let the agent reach outside its container; mount a project directory instead.", m.raw, r.Real, why)
	}
	if why := checkSource(r.Real, c.sensitive); why != "" && sensitive == "" {
		if !m.AllowSensitive {
			return fail(hcl.DiagError, "Sensitive mount source", "%q resolves to %s, which %s. An agent given it could read or change them; mount a project directory instead, or, if this agent must have it, add allow_sensitive = true to this mount block.", m.raw, r.Real, why)
		}
		sensitive = "resolves to " + r.Real + ", which " + why
	}
	switch mode := r.Mode; {
	case mode&fs.ModeSocket != 0:
		return fail(hcl.DiagError, "Mount source is a socket", "%q is the unix socket %s. A socket lets the agent talk to a host service (an engine socket gives full control of the host), so sockets are never mounted. Mount a directory or a regular file instead.", m.raw, r.Real)
	case !mode.IsDir() && !mode.IsRegular():
		return fail(hcl.DiagError, "Mount source is not a file or directory", "%q is %s, a %s. Only directories and regular files can be mounted.", m.raw, r.Real, fileKind(mode))
	}
	switch {
	case m.AllowSensitive && sensitive != "":
		diags = fail(hcl.DiagWarning, "Sensitive mount source allowed", "%q %s; allow_sensitive = true gives it to agent %q.", m.raw, sensitive, agent)
	case m.AllowSensitive:
		diags = fail(hcl.DiagWarning, "allow_sensitive has no effect", "%q (%s) is not one of your secrets. Remove allow_sensitive, so that a later change of this source to a sensitive path is not acknowledged in advance.", m.raw, r.Real)
	}
	return diags
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file"
	}
}

// trust is who may change the path to a source: root and the operator
// (under sudo, also the user who ran sudo), and their groups.
func trust() mountsrc.Trust {
	t := mountsrc.Trust{UIDs: []uint32{0, uint32(os.Geteuid())}, GIDs: []uint32{0, uint32(os.Getegid())}}
	if os.Geteuid() == 0 {
		if u, err := strconv.ParseUint(os.Getenv("SUDO_UID"), 10, 32); err == nil {
			t.UIDs = append(t.UIDs, uint32(u))
		}
		if g, err := strconv.ParseUint(os.Getenv("SUDO_GID"), 10, 32); err == nil {
			t.GIDs = append(t.GIDs, uint32(g))
		}
	}
	return t
}

// dirWhy says who else can write the directory of a DirError.
func dirWhy(de *mountsrc.DirError) string {
	switch {
	case de.ACL != "":
		return fmt.Sprintf("has an ACL that lets %s write (see getfacl %q)", de.ACL, de.Dir)
	case de.Mode&0o002 != 0:
		return fmt.Sprintf("everyone can write (mode %04o)", de.Mode.Perm())
	case !slices.Contains(trust().UIDs, de.UID):
		return fmt.Sprintf("belongs to uid %d", de.UID)
	default:
		return fmt.Sprintf("group %d can write (mode %04o)", de.GID, de.Mode.Perm())
	}
}
