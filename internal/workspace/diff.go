package workspace

import (
	"context"
	"fmt"
	"strings"
)

// Diff is `git diff BASE REF` (or --stat) in the host repository, REF
// being an agent's fetched branch. Host git compares two commits it holds,
// with no external diff, no textconv and no colour; the text is the
// agent's, to be printed through termsafe.
func Diff(ctx context.Context, repo, base, ref string, stat bool, file, agent string) (string, error) {
	if !commitID.MatchString(base) {
		return "", fmt.Errorf("base %q is not a commit id", base)
	}
	if _, err := hostGit(ctx, repo, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}"); err != nil {
		return "", fmt.Errorf("nothing fetched from agent %q yet (no %s in %s): run `runner fetch %s %s` first", agent, ref, repo, file, agent)
	}
	args := []string{"diff", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames"}
	if stat {
		args = append(args, "--stat")
	}
	args = append(args, base, ref, "--")
	out, err := hostGit(ctx, repo, nil, args...)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(out, "\n") + "\n", nil
}
