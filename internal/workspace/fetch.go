package workspace

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxFetch bounds what one fetch receives from an agent (the pack
// and the ref advertisement); RUNNER_FETCH_MAX overrides it.
const DefaultMaxFetch = 512 << 20

// MaxRefs bounds how many refs an agent's repository may advertise.
const MaxRefs = 10000

// MaxFetch is the cap in force: RUNNER_FETCH_MAX (bytes, or with KiB, MiB
// or GiB) or DefaultMaxFetch.
func MaxFetch() (int64, error) {
	v := os.Getenv("RUNNER_FETCH_MAX")
	if v == "" {
		return DefaultMaxFetch, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = s, u.m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("RUNNER_FETCH_MAX=%q: use a number of bytes, or with KiB, MiB or GiB (e.g. 512MiB)", os.Getenv("RUNNER_FETCH_MAX"))
	}
	return n * mult, nil
}

// FetchOptions says where a fetch comes from and goes to.
type FetchOptions struct {
	Repo       string // the host repository (trusted)
	Run, Agent string
	// Proxy is the argv that connects git to the agent's upload-pack: it
	// runs `git upload-pack` in the agent's container through the engine
	// and copies its standard streams (runner's hidden
	// `__fetch-pack-proxy`). git appends the service name.
	Proxy []string
	// Env is added to the proxy's environment (which is git's, sanitised).
	Env     []string
	Timeout time.Duration // default 10 minutes
}

// FetchResult is what a fetch changed in the host repository.
type FetchResult struct {
	// Heads are the agent's branches in the host repository after the
	// fetch: ref (under RefPrefix) -> commit.
	Heads map[string]string
	// Changed are the refs that are new or moved.
	Changed []string
}

// extArg escapes one argument for git's ext:: transport, which splits its
// command on spaces (and is given to no shell).
func extArg(s string) string {
	return strings.NewReplacer("%", "%%", " ", "% ").Replace(s)
}

// ExtURL is the ext:: URL that runs argv, with git's service name (%S)
// as the last argument.
func ExtURL(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = extArg(a)
	}
	return "ext::" + strings.Join(parts, " ") + " %S"
}

// Fetch brings the agent's branches into the host repository as
// RefPrefix(run, agent)+BRANCH, and changes nothing else there: no HEAD,
// index, worktree, other ref, config or FETCH_HEAD, and runs no hook. The
// pack is checked object by object (transfer.fsckObjects) before any ref
// moves.
func Fetch(ctx context.Context, o FetchOptions) (FetchResult, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prefix := RefPrefix(o.Run, o.Agent)
	before, err := heads(ctx, o.Repo, prefix)
	if err != nil {
		return FetchResult{}, err
	}
	env := append([]string{"GIT_ALLOW_PROTOCOL=ext"}, o.Env...)
	_, err = hostGit(ctx, o.Repo, env,
		"-c", "protocol.ext.allow=always",
		"-c", "protocol.version=0", // the proxy counts the refs of a v0 advertisement
		"-c", "transfer.fsckObjects=true",
		"-c", "fetch.fsckObjects=true",
		"-c", "fetch.prune=false",
		"-c", "fetch.pruneTags=false",
		"-c", "fetch.showForcedUpdates=false",
		"fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
		"--no-auto-gc", "--no-auto-maintenance", "--no-show-forced-updates",
		"--", ExtURL(o.Proxy), "+refs/heads/*:"+prefix+"*")
	if err != nil {
		if ctx.Err() != nil {
			return FetchResult{}, fmt.Errorf("fetching agent %q's work did not finish within %s: %w", o.Agent, timeout, err)
		}
		return FetchResult{}, fmt.Errorf("fetching agent %q's work into %s refused (nothing changed there but possibly unreferenced objects): %w", o.Agent, o.Repo, err)
	}
	after, err := heads(ctx, o.Repo, prefix)
	if err != nil {
		return FetchResult{}, err
	}
	res := FetchResult{Heads: after}
	for ref, sha := range after {
		if before[ref] != sha {
			res.Changed = append(res.Changed, ref)
		}
	}
	slices.Sort(res.Changed)
	return res, nil
}

var headLine = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64}) (refs/\S+)$`)

// heads lists the refs under prefix in the host repository.
func heads(ctx context.Context, repo, prefix string) (map[string]string, error) {
	out, err := hostGit(ctx, repo, nil, "for-each-ref", "--format=%(objectname) %(refname)", prefix)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		sub := headLine.FindStringSubmatch(l)
		if sub == nil {
			return nil, fmt.Errorf("git for-each-ref in %s printed %q", repo, l)
		}
		m[sub[2]] = sub[1]
	}
	return m, nil
}

// Heads lists the agent's fetched branches in the host repository.
func Heads(ctx context.Context, repo, run, agent string) (map[string]string, error) {
	return heads(ctx, repo, RefPrefix(run, agent))
}
