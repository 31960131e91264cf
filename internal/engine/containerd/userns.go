package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/uids"
)

// How runs get their user namespaces.
//
// An account of runner's own (UserNSOwner, runner-userns; scripts/
// containerd.sh creates it) has one range in /etc/subuid and one in
// /etc/subgid. They are cut into slots of SlotSize ids; a run holds one
// slot: container ids 0…65535 of every container of the run map to the
// slot's host ids. So container root is not host root, runs do not share
// host ids, and every agent uid (40000–44095) has a host uid of its own.
//
// The slot a run holds is recorded on its containers, in the label
// runner.userns ("HOSTUID:HOSTGID", the slot's first ids): the engine is
// the source of truth, as for everything else. A run with containers keeps
// its slot; a run without any gets the first free slot from a hash of its
// name, probing upwards. Choosing and creating the container that records
// the choice happen under an flock, so two applies on this host at once
// cannot take one slot.
const (
	// SlotSize ids per run: every id an image's files or an agent can have.
	SlotSize = 65536
	// labelUserNS records a container's slot.
	labelUserNS = "runner.userns"
	// lockPath serialises allocation between runner processes.
	lockPath = "/run/runner-containerd-userns.lock"
)

// UserNSOwner is the account whose subordinate ids runs get
// (RUNNER_USERNS_USER overrides it).
func UserNSOwner() string {
	if u := os.Getenv("RUNNER_USERNS_USER"); u != "" {
		return u
	}
	return "runner-userns"
}

// slots are the owner's ranges as slots.
type slots struct {
	owner            string
	uidBase, gidBase uint64
	n                uint64
}

func readSlots(h *uids.Host) (slots, error) {
	owner := UserNSOwner()
	var su, sg *uids.Sub
	for i := range h.SubUID {
		if h.SubUID[i].Owner == owner && su == nil {
			su = &h.SubUID[i]
		}
	}
	for i := range h.SubGID {
		if h.SubGID[i].Owner == owner && sg == nil {
			sg = &h.SubGID[i]
		}
	}
	if su == nil || sg == nil || su.Count < SlotSize || sg.Count < SlotSize {
		return slots{}, fmt.Errorf("engine \"containerd\" gives every run a user namespace of %d ids from the account %q's ranges in /etc/subuid and /etc/subgid, and it has none (or fewer than %d ids): as root, run scripts/containerd.sh, or `useradd --system %s` and `usermod --add-subuids 1048576-5242879 --add-subgids 1048576-5242879 %s` (RUNNER_USERNS_USER names another account)", SlotSize, owner, SlotSize, owner, owner)
	}
	return slots{owner: owner, uidBase: su.Start, gidBase: sg.Start, n: min(su.Count, sg.Count) / SlotSize}, nil
}

func (s slots) mapping(i uint64) uids.Mapping {
	return uids.Mapping{
		Kind: "userns", Owner: s.owner,
		UID: []uids.Extent{{Inside: 0, Outside: s.uidBase + i*SlotSize, Count: SlotSize}},
		GID: []uids.Extent{{Inside: 0, Outside: s.gidBase + i*SlotSize, Count: SlotSize}},
	}
}

// formatSlot is a mapping's label value.
func formatSlot(m uids.Mapping) string {
	return fmt.Sprintf("%d:%d", m.UID[0].Outside, m.GID[0].Outside)
}

// slotOf finds which slot a label names (false if none of s's).
func (s slots) slotOf(label string) (uint64, bool) {
	u, g, ok := strings.Cut(label, ":")
	hu, err1 := strconv.ParseUint(u, 10, 64)
	hg, err2 := strconv.ParseUint(g, 10, 64)
	if !ok || err1 != nil || err2 != nil || hu < s.uidBase || (hu-s.uidBase)%SlotSize != 0 {
		return 0, false
	}
	i := (hu - s.uidBase) / SlotSize
	if i >= s.n || hg != s.gidBase+i*SlotSize {
		return 0, false
	}
	return i, true
}

// choose picks run's slot: the one its containers record, else the first
// free one from the run's hash. used maps slots to the runs holding them.
func (s slots) choose(run string, mine []string, used map[uint64]string) (uint64, error) {
	for _, l := range mine {
		if i, ok := s.slotOf(l); ok {
			return i, nil
		}
	}
	sum := sha256.Sum256([]byte(run))
	start := binary.BigEndian.Uint64(sum[:8]) % s.n
	for k := uint64(0); k < s.n; k++ {
		i := (start + k) % s.n
		if _, taken := used[i]; !taken {
			return i, nil
		}
	}
	return 0, fmt.Errorf("every one of the %d user namespaces of %s (/etc/subuid) is held by a run: destroy a run, or give %s a larger range", s.n, s.owner, s.owner)
}

// RunMapping is the user namespace of run's containers: the one they
// record, or the one the next container of the run would get. Runner uses
// it to check agent uids against the host and to give bind mounts to the
// agent's host uid.
func (e *Engine) RunMapping(ctx context.Context, run string) (uids.Mapping, error) {
	m, unlock, err := e.allocateLocked(ctx, run, false)
	if unlock != nil {
		unlock()
	}
	return m, err
}

// allocate is RunMapping under the lock, held until unlock: Create keeps
// it until the container recording the choice exists.
func (e *Engine) allocate(ctx context.Context, run string) (uids.Mapping, func(), error) {
	return e.allocateLocked(ctx, run, true)
}

func (e *Engine) allocateLocked(ctx context.Context, run string, lock bool) (uids.Mapping, func(), error) {
	h, err := uids.ReadHost("/")
	if err != nil {
		return uids.Mapping{}, nil, err
	}
	s, err := readSlots(h)
	if err != nil {
		return uids.Mapping{}, nil, err
	}
	var unlock func()
	if lock {
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return uids.Mapping{}, nil, fmt.Errorf("containerd: the user-namespace lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return uids.Mapping{}, nil, fmt.Errorf("containerd: the user-namespace lock: %w", err)
		}
		unlock = func() { f.Close() }
	}
	cs, err := e.cli.Containers(ctx, fmt.Sprintf("labels.%q", engine.LabelRun))
	if err != nil {
		if unlock != nil {
			unlock()
		}
		return uids.Mapping{}, nil, e.wrap("list containers", err)
	}
	var mine []string
	used := map[uint64]string{}
	for _, c := range cs {
		l, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		if l[engine.LabelRun] == run {
			mine = append(mine, l[labelUserNS])
			continue
		}
		if i, ok := s.slotOf(l[labelUserNS]); ok {
			used[i] = l[engine.LabelRun]
		}
	}
	i, err := s.choose(run, mine, used)
	if err != nil {
		if unlock != nil {
			unlock()
		}
		return uids.Mapping{}, nil, err
	}
	return s.mapping(i), unlock, nil
}
