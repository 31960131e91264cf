package runner

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/engine"
)

// warnUnwritableMounts says, before containers are created, which
// writable mounts an agent's uid cannot write: agents no longer share the
// operator's uid, so a workspace only the operator may write is read-only
// to them in effect. Only mode bits are judged; a directory with an ACL is
// left alone (the ACL may grant it).
func (r *Runner) warnUnwritableMounts(ctx context.Context, info engine.Info, ds []desiredAgent) {
	for _, msg := range r.unwritableMounts(ctx, info, ds) {
		r.progress("%s", msg)
	}
}

// unwritableMounts are the warnings for writable mounts an agent's uid
// cannot write; plan shows them, apply says them again when nobody was
// shown the plan (the Go API without Approve).
func (r *Runner) unwritableMounts(ctx context.Context, info engine.Info, ds []desiredAgent) []string {
	var out []string
	for _, d := range ds {
		ih, err := engineIDs(ctx, r.Engine, info, d.spec.Labels[engine.LabelRun])
		if err != nil {
			return out
		}
		uid, _, hu, hg, ok := ih.hostIDs(d.spec.User)
		if !ok {
			continue
		}
		for _, m := range d.agent.Mounts {
			if m.ReadOnly {
				continue
			}
			if why := unwritable(m.Source, hu, hg); why != "" {
				out = append(out, fmt.Sprintf("%s: warning: it runs as uid %d (host uid %d), which cannot write %s (%s): give it access (setfacl -m u:%d:rwx %s), or set user = \"UID:GID\" on the agent", d.agent.Name, uid, hu, m.Source, why, hu, m.Source))
				r.log().Warn("writable mount the agent cannot write", "agent", d.agent.Name, "source", m.Source, "host_uid", hu)
			}
		}
	}
	return out
}

// unwritable says why host uid:gid cannot write path by its mode bits, or
// "" if it can (or an ACL might let it, or path is gone).
func unwritable(path string, uid, gid uint32) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if _, err := unix.Getxattr(path, "system.posix_acl_access", nil); err == nil {
		return ""
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid == uid && mode&0o200 != 0,
		st.Uid != uid && st.Gid == gid && mode&0o020 != 0,
		st.Uid != uid && st.Gid != gid && mode&0o002 != 0:
		return ""
	}
	return fmt.Sprintf("owner %d, group %d, mode %04o", st.Uid, st.Gid, mode)
}
