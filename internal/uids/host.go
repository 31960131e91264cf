package uids

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Host is the account database of the machine the engine runs on: who has
// which uid and gid, and which subordinate ranges are handed out. It is read
// from files, as the engine's own tools do (shadow-utils, newuidmap); accounts
// that exist only in a network directory (LDAP, sssd) or systemd's
// DynamicUser are not in these files, which is why the range stays clear of
// where they live.
type Host struct {
	Users  map[uint32]string // uid -> account (/etc/passwd)
	Groups map[uint32]string // gid -> group (/etc/group)
	SubUID []Sub             // /etc/subuid
	SubGID []Sub             // /etc/subgid
}

// Sub is one line of /etc/subuid or /etc/subgid.
type Sub struct {
	Owner        string // user name or uid, as written
	Start, Count uint64
}

func (s Sub) contains(id uint32) bool {
	return uint64(id) >= s.Start && uint64(id) < s.Start+s.Count
}

// ReadHost reads root/etc/{passwd,group,subuid,subgid}; root is "/" on the
// engine's host (tests pass a directory). passwd and group must exist: an
// allocation that cannot see the accounts cannot promise to avoid them.
func ReadHost(root string) (*Host, error) {
	h := &Host{Users: map[uint32]string{}, Groups: map[uint32]string{}}
	read := func(name string, optional bool, line func(fields []string) error) error {
		p := filepath.Join(root, "etc", name)
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) && optional {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the host's accounts: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			l := strings.TrimSpace(sc.Text())
			// Comments, blanks and NIS compat lines ("+", "-name").
			if l == "" || l[0] == '#' || l[0] == '+' || l[0] == '-' {
				continue
			}
			if err := line(strings.Split(l, ":")); err != nil {
				return fmt.Errorf("%s:%d: %w", p, n, err)
			}
		}
		return sc.Err()
	}
	id := func(s string) (uint32, error) {
		v, err := strconv.ParseUint(s, 10, 32)
		return uint32(v), err
	}
	if err := read("passwd", false, func(f []string) error {
		if len(f) < 3 {
			return errors.New("not name:password:uid:...")
		}
		uid, err := id(f[2])
		if err != nil {
			return fmt.Errorf("uid %q: %w", f[2], err)
		}
		h.Users[uid] = f[0]
		return nil
	}); err != nil {
		return nil, err
	}
	if err := read("group", false, func(f []string) error {
		if len(f) < 3 {
			return errors.New("not name:password:gid:...")
		}
		gid, err := id(f[2])
		if err != nil {
			return fmt.Errorf("gid %q: %w", f[2], err)
		}
		h.Groups[gid] = f[0]
		return nil
	}); err != nil {
		return nil, err
	}
	sub := func(dst *[]Sub) func([]string) error {
		return func(f []string) error {
			if len(f) != 3 {
				return errors.New("not owner:start:count")
			}
			start, err1 := strconv.ParseUint(f[1], 10, 32)
			count, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("bad range %q", strings.Join(f, ":"))
			}
			*dst = append(*dst, Sub{Owner: f[0], Start: start, Count: count})
			return nil
		}
	}
	if err := read("subuid", true, sub(&h.SubUID)); err != nil {
		return nil, err
	}
	if err := read("subgid", true, sub(&h.SubGID)); err != nil {
		return nil, err
	}
	return h, nil
}

// Conflict says why container id id (as uid and as gid) cannot be an
// agent's on this host under mapping m, or "" if it can: the host uid it
// maps to is an account, the host gid a group, or (container ids that are
// host ids: rootful without user namespaces) one lies in a subordinate range
// handed to a user. Under a user namespace the mapped ids lie in the engine's
// own subordinate range by design; they must still be no account.
func (h *Host) Conflict(m Mapping, id uint32) string {
	hu, okU := m.HostUID(id)
	hg, okG := m.HostGID(id)
	switch {
	case !okU:
		return fmt.Sprintf("container uid %d has no host uid in the engine's user namespace (%s)", id, m.Describe())
	case !okG:
		return fmt.Sprintf("container gid %d has no host gid in the engine's user namespace (%s)", id, m.Describe())
	}
	if n, ok := h.Users[hu]; ok {
		return fmt.Sprintf("host uid %d is the account %q in /etc/passwd", hu, n)
	}
	if n, ok := h.Groups[hg]; ok {
		return fmt.Sprintf("host gid %d is the group %q in /etc/group", hg, n)
	}
	for _, s := range h.SubUID {
		if s.contains(hu) && !m.owns(s) {
			return fmt.Sprintf("host uid %d is in %s's subordinate uids (/etc/subuid %d+%d)", hu, s.Owner, s.Start, s.Count)
		}
	}
	for _, s := range h.SubGID {
		if s.contains(hg) && !m.owns(s) {
			return fmt.Sprintf("host gid %d is in %s's subordinate gids (/etc/subgid %d+%d)", hg, s.Owner, s.Start, s.Count)
		}
	}
	return ""
}

// subFor returns the first subordinate range of a user (by name or uid).
func subFor(subs []Sub, name string, id uint32) (Sub, bool) {
	for _, s := range subs {
		if s.Owner == name || s.Owner == strconv.FormatUint(uint64(id), 10) {
			return s, true
		}
	}
	return Sub{}, false
}

// nameOf returns the account with uid id ("" if none).
func (h *Host) nameOf(id uint32) string { return h.Users[id] }
