package workspace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/termsafe"
)

// State is a clone as git inside the agent's container reports it. Every
// field came from the container: the agent can make it say anything, so
// it is parsed strictly and is only ever shown, never acted on.
type State struct {
	Branch string // the checked-out branch, "(detached)", or what the agent's git claims
	Ahead  int    // commits from the base to HEAD
	Dirty  bool   // changes not committed (untracked files included)
}

// statusTimeout bounds each git run in the container: the agent's clone may
// make git slow or hang (a hook, fsmonitor, a huge tree).
const statusTimeout = 15 * time.Second

// Inspect asks git in the agent's container about its clone at path.
func Inspect(ctx context.Context, eng engine.Engine, id, user, path, base string) (State, error) {
	if !commitID.MatchString(base) {
		return State{}, fmt.Errorf("base %q is not a commit id", base)
	}
	if _, _, err := parseUser(user); err != nil {
		return State{}, err
	}
	run := func(argv ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		res, err := eng.Exec(cctx, id, user, argv)
		if err != nil {
			return "", err
		}
		if res.ExitCode != 0 {
			return "", fmt.Errorf("git in the container exited %d: %s", res.ExitCode, strings.TrimSpace(termsafe.Line(firstLine(res.Stderr))))
		}
		if res.Truncated {
			return "", errors.New("git in the container printed too much")
		}
		return res.Stdout, nil
	}
	out, err := run("git", "-C", path, "status", "--porcelain=v2", "--branch", "-z")
	if err != nil {
		return State{}, err
	}
	st, err := ParseStatus(out)
	if err != nil {
		return State{}, err
	}
	count, err := run("git", "-C", path, "rev-list", "--count", base+"..HEAD", "--")
	if err != nil {
		return st, err
	}
	st.Ahead, err = ParseCount(count)
	return st, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// ParseStatus reads `git status --porcelain=v2 --branch -z`.
func ParseStatus(out string) (State, error) {
	var st State
	sawHead := false
	for _, rec := range strings.Split(out, "\x00") {
		if rec == "" {
			continue
		}
		if v, ok := strings.CutPrefix(rec, "# branch.head "); ok {
			if sawHead {
				return State{}, errors.New("git status reported two branches")
			}
			sawHead = true
			if !utf8.ValidString(v) || len(v) > 255 || v != termsafe.Line(v) || strings.ContainsAny(v, " \t\n") {
				return State{}, errors.New("git status reported a branch name no branch can have")
			}
			st.Branch = v
			continue
		}
		if strings.HasPrefix(rec, "# ") {
			continue // other headers: oid, upstream
		}
		switch rec[0] {
		case '1', '2', 'u', '?', '!':
			st.Dirty = true
		default:
			// A rename record's second path is a record of its own under -z.
			if !st.Dirty {
				return State{}, errors.New("git status printed a line that is not porcelain v2")
			}
		}
	}
	if !sawHead {
		return State{}, errors.New("git status did not report a branch")
	}
	return st, nil
}

// ParseCount reads `git rev-list --count`.
func ParseCount(out string) (int, error) {
	s := strings.TrimSuffix(out, "\n")
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("git rev-list --count printed something that is not a count")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New("git rev-list --count printed something that is not a count")
	}
	return n, nil
}

// Describe is the state in a few words for a status line.
func (s State) Describe() string {
	d := "clean"
	if s.Dirty {
		d = "dirty"
	}
	return fmt.Sprintf("%s, %d ahead, %s", s.Branch, s.Ahead, d)
}
