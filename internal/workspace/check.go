package workspace

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/config"
)

var commitID = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Resolve checks that repo (a resolved host path) is the top of a git
// repository, or a bare one, and returns the commit ref names there ("" is
// HEAD). Only the operator's repository is read.
func Resolve(ctx context.Context, repo, ref string) (string, error) {
	fi, err := os.Stat(repo)
	if err != nil {
		return "", fmt.Errorf("%s: %w", repo, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory, so not a git repository", repo)
	}
	out, err := hostGit(ctx, repo, nil, "rev-parse", "--is-bare-repository", "--show-prefix")
	if err != nil {
		return "", fmt.Errorf("%s is not a git repository (create one with `git init`, or point repo at one): %w", repo, err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || (lines[0] != "true" && lines[0] != "false") {
		return "", fmt.Errorf("%s: git rev-parse said %q", repo, out)
	}
	if lines[0] == "false" && len(lines) > 1 && lines[1] != "" {
		top := strings.TrimSuffix(repo, "/"+strings.TrimSuffix(lines[1], "/"))
		return "", fmt.Errorf("%s is inside the git repository %s, not the top of one: point repo at %s", repo, top, top)
	}
	if ref == "" {
		ref = "HEAD"
	}
	sha, err := hostGit(ctx, repo, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	sha = strings.TrimSpace(sha)
	if err != nil || !commitID.MatchString(sha) {
		if ref == "HEAD" {
			return "", fmt.Errorf("the repository %s has no commit at HEAD yet: commit something, or set ref", repo)
		}
		return "", fmt.Errorf("ref %q is not a branch, tag or commit of %s (see `git -C %s branch -a`)", ref, repo, repo)
	}
	return sha, nil
}

// Check resolves every workspace of cfg whose repository passed the
// mount-source rules (srcs), as validate, plan and apply do before anything
// is created. It returns the base commit per agent and the problems as
// diagnostics at the attribute that is wrong.
func Check(ctx context.Context, cfg *config.Config, srcs *config.Sources) (map[string]string, hcl.Diagnostics) {
	bases := map[string]string{}
	var diags hcl.Diagnostics
	type key struct{ repo, ref string }
	seen := map[key]error{}
	for _, a := range cfg.Agents {
		w := a.Workspace
		if w == nil {
			continue
		}
		repo := srcs.WorkspaceRepo(a.Name)
		if repo == "" {
			continue // refused by the mount-source rules, reported there
		}
		k := key{repo, w.Ref}
		sha, err := "", seen[k]
		if _, done := seen[k]; !done || err == nil {
			sha, err = Resolve(ctx, repo, w.Ref)
			seen[k] = err
		}
		if err != nil {
			subject, summary := w.RepoRange, "Workspace repo is not a git repository"
			if strings.HasPrefix(err.Error(), "ref ") || strings.Contains(err.Error(), "no commit at HEAD") {
				subject, summary = w.RefRange, "Workspace ref not found"
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  summary,
				Detail:   fmt.Sprintf("Agent %q's workspace: %s.", a.Name, strings.TrimSuffix(err.Error(), ".")),
				Subject:  subject.Ptr(),
			})
			continue
		}
		bases[a.Name] = sha
	}
	return bases, dedupDiags(diags)
}

// dedupDiags drops the copies a counted agent block makes.
func dedupDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	seen := map[string]bool{}
	for _, d := range diags {
		k := d.Summary + "\x00" + d.Subject.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		// The agent's name differs per instance; one line covers them.
		out = append(out, d)
	}
	return out
}
