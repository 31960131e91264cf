package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CloneOptions says what Clone makes.
type CloneOptions struct {
	Repo   string // the host repository (resolved, checked by Resolve)
	Base   string // the commit the branch starts at
	Branch string // the agent's branch, e.g. runner/RUN/AGENT
	Dir    string // where the clone goes; must not exist
	// Name and Email are the clone's user.name and user.email, so the
	// agent can commit without a config of its own.
	Name, Email string
	// UID and GID own every file of the clone when it is done (the
	// agent's host ids); -1 keeps the caller's.
	UID, GID int
}

// Clone makes a private clone of o.Repo in o.Dir with a worktree checked
// out on o.Branch at o.Base, and gives it to o.UID:o.GID. It shares nothing
// with the host repository: objects are copied (no hard links, no
// alternates), no remote names the host path, only o.Branch is a branch.
// It is built in a temporary directory beside o.Dir and renamed into place,
// so o.Dir is either complete or absent.
//
// Git runs here only in the host repository and in the new clone before
// any container can reach it.
func Clone(ctx context.Context, o CloneOptions) (err error) {
	if _, err := os.Lstat(o.Dir); err == nil {
		return fmt.Errorf("%s exists already", o.Dir)
	}
	parent := filepath.Dir(o.Dir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(o.Dir)+".clone-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	// A local clone copies the object files, which is far cheaper than
	// packing them (see bench/); it would also copy the source's
	// alternates file, which points at host paths, so a repository with
	// alternates is cloned through git's pack protocol instead.
	mode := "--local"
	alt, err := hostGit(ctx, o.Repo, nil, "rev-parse", "--git-path", "objects/info/alternates")
	if err != nil {
		return err
	}
	altPath := strings.TrimSpace(alt)
	if !filepath.IsAbs(altPath) {
		altPath = filepath.Join(o.Repo, altPath)
	}
	if _, err := os.Stat(altPath); err == nil {
		mode = "--no-local"
	}
	if _, err := hostGit(ctx, parent, nil, "clone", "--quiet", "--no-checkout", "--no-hardlinks", mode, "--template=", "--", o.Repo, tmp); err != nil {
		return fmt.Errorf("cloning %s: %w", o.Repo, err)
	}
	steps := [][]string{
		{"config", "user.name", o.Name},
		{"config", "user.email", o.Email},
		{"-c", "checkout.workers=0", "checkout", "--quiet", "-b", o.Branch, o.Base},
		{"remote", "remove", "origin"},
	}
	for _, s := range steps {
		if _, err := hostGit(ctx, tmp, nil, s...); err != nil {
			return fmt.Errorf("preparing the clone of %s: %w", o.Repo, err)
		}
	}
	// Only the agent's branch: its other branches would be fetched back
	// under the agent's refs as if it had made them.
	out, err := hostGit(ctx, tmp, nil, "for-each-ref", "--format=%(refname)", "refs/heads/")
	if err != nil {
		return err
	}
	for _, ref := range strings.Fields(out) {
		if ref != "refs/heads/"+o.Branch {
			if _, err := hostGit(ctx, tmp, nil, "update-ref", "-d", ref); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(filepath.Join(tmp, ".git", "FETCH_HEAD")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := chownTree(tmp, o.UID, o.GID); err != nil {
		return fmt.Errorf("giving the clone to uid %d: %w", o.UID, err)
	}
	return os.Rename(tmp, o.Dir)
}

// chownTree gives every entry under dir to uid:gid without following a
// symlink (the tree is the fresh clone; the repository may hold links).
func chownTree(dir string, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	if uid == os.Geteuid() && gid == os.Getegid() {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Size is the disk space the files under dir take (their blocks), for
// the benchmark and status.
func Size(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += blocks(fi)
		return nil
	})
	return n, err
}

func blocks(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
