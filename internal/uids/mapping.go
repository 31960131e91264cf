package uids

import (
	"fmt"
	"strconv"
	"strings"
)

// Mapping is how the engine maps container ids to host ids.
type Mapping struct {
	// Kind is "none" (rootful, no user namespace: container uid = host
	// uid), "rootless" (the daemon runs as an unprivileged user in a user
	// namespace), "userns-remap" (a root daemon with --userns-remap) or
	// "userns" (a user namespace per run, from Owner's subordinate ids:
	// the containerd engine).
	Kind string
	// Owner is the user whose subordinate ranges the namespace uses.
	Owner    string
	OwnerUID uint32
	UID, GID []Extent
}

// Extent is one line of /proc/PID/uid_map: Count ids from Inside (the
// container's) map to Count ids from Outside (the host's).
type Extent struct{ Inside, Outside, Count uint64 }

// Identity is a rootful engine without user namespaces.
func Identity() Mapping { return Mapping{Kind: "none"} }

// Rootless is the mapping rootlesskit sets up for a daemon running as
// daemonUID:daemonGID: container 0 is the daemon's user, container 1…N its
// first /etc/subuid (and /etc/subgid) range.
func Rootless(h *Host, daemonUID, daemonGID uint32) (Mapping, error) {
	name := h.nameOf(daemonUID)
	su, okU := subFor(h.SubUID, name, daemonUID)
	sg, okG := subFor(h.SubGID, name, daemonUID)
	if !okU || !okG {
		return Mapping{}, fmt.Errorf("the rootless engine runs as uid %d (%q), which has no range in /etc/subuid and /etc/subgid: a rootless engine needs one (see `man subuid`)", daemonUID, name)
	}
	return Mapping{
		Kind: "rootless", Owner: name, OwnerUID: daemonUID,
		UID: []Extent{{0, uint64(daemonUID), 1}, {1, su.Start, su.Count}},
		GID: []Extent{{0, uint64(daemonGID), 1}, {1, sg.Start, sg.Count}},
	}, nil
}

// Remap is a root daemon with --userns-remap whose container root is host
// rootUID:rootGID (the suffix of its data root, /var/lib/docker/UID.GID):
// container 0…N-1 are the remap user's subordinate range from that id.
func Remap(h *Host, rootUID, rootGID uint32) (Mapping, error) {
	var su, sg Sub
	var okU, okG bool
	for _, s := range h.SubUID {
		if s.Start == uint64(rootUID) {
			su, okU = s, true
			break
		}
	}
	for _, s := range h.SubGID {
		if s.Start == uint64(rootGID) {
			sg, okG = s, true
			break
		}
	}
	if !okU || !okG {
		return Mapping{}, fmt.Errorf("the engine remaps container root to %d:%d, but no /etc/subuid and /etc/subgid range starts there", rootUID, rootGID)
	}
	return Mapping{
		Kind: "userns-remap", Owner: su.Owner,
		UID: []Extent{{0, su.Start, su.Count}},
		GID: []Extent{{0, sg.Start, sg.Count}},
	}, nil
}

// ParseIDMap parses the text of /proc/PID/uid_map or gid_map.
func ParseIDMap(text string) ([]Extent, error) {
	var out []Extent
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q: want three numbers", l)
		}
		var e [3]uint64
		for i := range f {
			v, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %q: %w", l, err)
			}
			e[i] = v
		}
		out = append(out, Extent{e[0], e[1], e[2]})
	}
	return out, nil
}

func lookup(es []Extent, id uint32, identity bool) (uint32, bool) {
	if identity {
		return id, true
	}
	for _, e := range es {
		if uint64(id) >= e.Inside && uint64(id) < e.Inside+e.Count {
			return uint32(e.Outside + uint64(id) - e.Inside), true
		}
	}
	return 0, false
}

// HostUID is the host uid of container uid id.
func (m Mapping) HostUID(id uint32) (uint32, bool) { return lookup(m.UID, id, m.Kind == "none") }

// HostGID is the host gid of container gid id.
func (m Mapping) HostGID(id uint32) (uint32, bool) { return lookup(m.GID, id, m.Kind == "none") }

// Namespaced reports whether container ids differ from host ids.
func (m Mapping) Namespaced() bool { return m.Kind != "none" }

// owns reports whether a subordinate range is the namespace's own.
func (m Mapping) owns(s Sub) bool {
	return m.Namespaced() && (s.Owner == m.Owner || (m.Kind == "rootless" && s.Owner == strconv.FormatUint(uint64(m.OwnerUID), 10)))
}

// Describe is one line for doctor and errors.
func (m Mapping) Describe() string {
	switch m.Kind {
	case "none":
		return "no user namespace: container uid = host uid"
	case "userns":
		if len(m.UID) == 0 {
			return "a user namespace per run, from the subordinate ids of the engine's account (/etc/subuid)"
		}
		return fmt.Sprintf("user namespace of this run: container uid 0-%d = host %d-%d (%s's /etc/subuid)", m.UID[0].Count-1, m.UID[0].Outside, m.UID[0].Outside+m.UID[0].Count-1, m.Owner)
	case "rootless":
		return fmt.Sprintf("rootless: container uid 0 = host uid %d, 1-%d = host %d-%d (%s's /etc/subuid)", m.UID[0].Outside, m.UID[1].Count, m.UID[1].Outside, m.UID[1].Outside+m.UID[1].Count-1, m.Owner)
	default:
		return fmt.Sprintf("userns-remap: container uid 0-%d = host %d-%d (%s's /etc/subuid)", m.UID[0].Count-1, m.UID[0].Outside, m.UID[0].Outside+m.UID[0].Count-1, m.Owner)
	}
}
