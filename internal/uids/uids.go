// Package uids gives every agent a uid and gid of its own, from a range no
// host account uses (DESIGN.md invariant 13). An agent that shares a uid
// with a host account, or with another agent, shares everything the kernel
// keys by uid: /proc/PID/root and ptrace-style access, signals, per-uid
// quotas (POSIX message queues, inotify, RLIMIT_NPROC), and files.
//
// The range is First … First+Count-1 (40000–44095):
//
//   - below 60000: Debian's useradd stops at UID_MAX 60000, and 60000–65535
//     is taken by Debian's on-demand global ids, systemd-homed (60001–60513),
//     systemd's DynamicUser services (61184–65519, which are in no
//     /etc/passwd) and nobody (65534);
//   - below 65536: a rootless engine maps container uids 1…65536 onto its
//     user's /etc/subuid range, so a higher container uid has no host uid;
//   - far above where useradd hands out accounts (1000 upward, in order) and
//     below where /etc/subuid ranges start by default (100000);
//   - and every candidate is checked at plan and apply against the engine
//     host's /etc/passwd, /etc/group, /etc/subuid and /etc/subgid (see Host).
//
// The gid is the same number as the uid, and both must be free.
//
// A uid is chosen stably: an agent keeps the uid its container already has
// while that uid is still free, and a new agent starts at a slot derived
// from a hash of its run and name, probing upwards past anything taken, so
// adding or removing other agents never moves it (and never replaces its
// container). Taken means: by another agent of the run, by any other runner
// container the engine lists (so runs on one engine do not share a uid
// either), or by the host (an account, a group, a subordinate range).
package uids

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The range runner allocates from.
const (
	First uint32 = 40000
	Count uint32 = 4096
)

// Last is the highest uid runner allocates.
const Last = First + Count - 1

// InRange reports whether id is one runner allocates.
func InRange(id uint32) bool { return id >= First && id <= Last }

// Request is one allocation: every agent of a run that has no explicit user.
type Request struct {
	Run    string
	Agents []string
	// Current is the uid each agent's existing container runs as; it is
	// kept when it is in range and still free.
	Current map[string]uint32
	// Taken maps uids already in use to who uses them ("run/agent", or an
	// explicit user of this run); an allocated uid is never one of them.
	Taken map[uint32]string
	// Conflict says why the host cannot give an agent this uid and gid
	// ("uid 40001 is account bob in /etc/passwd"), or "" when it can.
	// Nil means the host has no objection.
	Conflict func(id uint32) string
}

// Preferred is the first slot tried for an agent: a hash of its run and
// name, so it is the same on every apply and on every host.
func Preferred(run, agent string) uint32 {
	sum := sha256.Sum256([]byte(run + "\x00" + agent))
	return First + uint32(binary.BigEndian.Uint64(sum[:8])%uint64(Count))
}

// Allocate returns a uid for every agent of req, never two the same.
func Allocate(req Request) (map[string]uint32, error) {
	used := make(map[uint32]string, len(req.Taken)+len(req.Agents))
	for id, who := range req.Taken {
		used[id] = who
	}
	conflict := req.Conflict
	if conflict == nil {
		conflict = func(uint32) string { return "" }
	}
	agents := slices.Clone(req.Agents)
	slices.Sort(agents)
	agents = slices.Compact(agents)
	out := make(map[string]uint32, len(agents))

	// Keep what existing containers have, so they are not replaced.
	for _, a := range agents {
		id, ok := req.Current[a]
		if !ok || !InRange(id) || used[id] != "" || conflict(id) != "" {
			continue
		}
		out[a] = id
		used[id] = req.Run + "/" + a
	}
	for _, a := range agents {
		if _, ok := out[a]; ok {
			continue
		}
		start := Preferred(req.Run, a) - First
		found := false
		for i := uint32(0); i < Count; i++ {
			id := First + (start+i)%Count
			if used[id] != "" || conflict(id) != "" {
				continue
			}
			out[a] = id
			used[id] = req.Run + "/" + a
			found = true
			break
		}
		if !found {
			return nil, fmt.Errorf("no free uid left for agent %q: all %d uids runner allocates (%d-%d) are used by other agents or host accounts; destroy runs you no longer need, or set user = \"UID:GID\" on the agent", a, Count, First, Last)
		}
	}
	return out, nil
}

// User formats an allocated id as the container's "uid:gid".
func User(id uint32) string { return fmt.Sprintf("%d:%d", id, id) }

// ParseUser parses a numeric "uid:gid" or "uid" (gid = uid).
func ParseUser(u string) (uid, gid uint32, ok bool) {
	us, gs, hasGid := strings.Cut(u, ":")
	if !hasGid {
		gs = us
	}
	uv, err1 := strconv.ParseUint(us, 10, 32)
	gv, err2 := strconv.ParseUint(gs, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(uv), uint32(gv), true
}
