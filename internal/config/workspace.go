package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2"
)

// Workspace is an agent's `workspace { repo ref path }` block: a private
// clone of a host repository, made by apply in the run's state and mounted
// read-write into the agent alone (internal/workspace). Only the file's
// words are here; whether repo is a repository and ref a commit is checked
// on the host at the moment of use (workspace.Check), like mount sources.
type Workspace struct {
	Repo string // absolute, clean host path (relative ones joined to Config.Dir); symlinks not resolved
	Ref  string // where the agent's branch starts, as written; "" = the repository's HEAD
	Path string // where the clone appears in the container; default DefaultWorkspacePath

	RepoRange hcl.Range // the repo attribute's expression, for errors found later
	RefRange  hcl.Range // the ref attribute's expression (the block's header without one)
	DeclRange hcl.Range
	raw       string // repo as written, for messages
}

// DefaultWorkspacePath is where a workspace appears without a path.
const DefaultWorkspacePath = "/workspace"

var workspaceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "repo", Required: true},
		{Name: "ref"},
		{Name: "path"},
	},
}

// workspaceBlock is an agent's workspace block whose schema has been checked.
type workspaceBlock struct {
	block   *hcl.Block
	content *hcl.BodyContent
}

// readWorkspaceBlock reads an agent block's workspace blocks: at most one.
func (d *decoder) readWorkspaceBlock(blk *hcl.Block, ab *agentBlock) {
	if len(ab.workspace) > 0 {
		d.errorf(blk.DefRange, "Duplicate workspace block",
			"This agent already has a workspace block at %s. An agent has one workspace; give another agent the other repository.", at(ab.workspace[0].block.DefRange))
		return
	}
	c, diags := blk.Body.Content(workspaceSchema)
	d.diags = append(d.diags, diags...)
	ab.workspace = append(ab.workspace, workspaceBlock{block: blk, content: c})
}

// workspace evaluates an agent instance's workspace block, after its mounts
// (a workspace's path may not clash with a mount's target, and no mount may
// give the agent the repository itself).
func (d *decoder) workspace(s scope, ab agentBlock, mounts []Mount) *Workspace {
	if len(ab.workspace) == 0 {
		return nil
	}
	wb := ab.workspace[0]
	attrs := wb.content.Attributes
	w := &Workspace{Path: DefaultWorkspacePath, DeclRange: wb.block.DefRange, RefRange: wb.block.DefRange}
	ok := true
	if attr := attrs["repo"]; attr != nil {
		repo, rok := d.str(s, attr, true)
		switch {
		case !rok:
			ok = false
		case repo == "" || strings.ContainsRune(repo, 0):
			d.fail(s, attr.Expr, "Invalid workspace repo", `repo must be a git repository on the host, e.g. "." (relative to the directory of %s).`, attr.NameRange.Filename)
			ok = false
		default:
			p := repo
			if !filepath.IsAbs(p) {
				p = filepath.Join(d.dir, p)
			}
			w.Repo, w.raw, w.RepoRange = filepath.Clean(p), repo, attr.Expr.Range()
		}
	} else {
		ok = false // reported by the schema
	}
	if attr := attrs["ref"]; attr != nil {
		if ref, rok := d.str(s, attr, false); rok {
			if why := checkRef(ref); why != "" {
				d.fail(s, attr.Expr, "Invalid workspace ref", "%s", why)
				ok = false
			}
			w.Ref, w.RefRange = ref, attr.Expr.Range()
		}
	}
	if attr := attrs["path"]; attr != nil {
		if p, pok := d.str(s, attr, false); pok {
			if summary, detail := checkTarget(p); summary != "" {
				d.fail(s, attr.Expr, strings.Replace(summary, "mount target", "workspace path", 1), "%s", strings.ReplaceAll(detail, "target", "path"))
				ok = false
			}
			w.Path = p
		}
	}
	pathExpr := wb.block.DefRange
	if attr := attrs["path"]; attr != nil {
		pathExpr = attr.Expr.Range()
	}
	for _, m := range mounts {
		if rel, _ := conflict(w.Path, forbiddenPath{path: m.Target}); rel != "" {
			d.errorf(pathExpr, "Workspace path clashes with a mount",
				"The workspace's path %q %s the target %q of this agent's mount at %s. Give the workspace its own directory (default %q), or move the mount.",
				w.Path, relWord(rel), m.Target, at(m.SourceRange), DefaultWorkspacePath)
			ok = false
		}
		if w.Repo == "" {
			continue
		}
		if rel, _ := conflict(m.Source, forbiddenPath{path: w.Repo}); rel != "" {
			d.errorf(m.SourceRange, "Mount gives the agent its workspace's repository",
				"This mount's source %s %s the workspace repository %s (%s). An agent gets a private clone of the repository, never the repository itself, so nothing it writes (hooks, git config) reaches a git you run; remove the mount, or mount another directory.",
				m.Source, rel, w.Repo, at(w.RepoRange))
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return w
}

// relWord says how a path relates to another, for messages.
func relWord(rel string) string {
	switch rel {
	case "is":
		return "is"
	case "is inside":
		return "lies inside"
	default:
		return "contains"
	}
}

// checkRef says why ref cannot name a commit, or "". What it names is
// checked in the repository at plan and apply; this only keeps out what
// git could read as an option or what no ref can hold.
func checkRef(ref string) string {
	switch {
	case ref == "":
		return `ref names where the agent's branch starts: a branch, a tag or a commit, e.g. "main". Leave it out for the repository's HEAD.`
	case strings.HasPrefix(ref, "-"):
		return fmt.Sprintf("ref %q starts with \"-\", which git would read as an option. Name a branch, a tag or a commit.", ref)
	case len(ref) > 256:
		return "ref is longer than 256 bytes. Name a branch, a tag or a commit."
	}
	for _, r := range ref {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Sprintf("ref %q contains a space or a control character, which no branch, tag or commit name has.", ref)
		}
	}
	return ""
}

// Raw is the repo as the file wrote it, for messages.
func (w *Workspace) Raw() string { return w.raw }
