// Package mountsrc resolves bind-mount sources on the host so that no
// container can redirect them. It follows symlinks one path component at a
// time with lstat (never stat, so the kernel follows nothing on its own),
// records every link it crossed, and refuses
//
//   - a link that lies inside any writable mount of the run: a container
//     could have planted it there (its own writable mount included: the next
//     apply would otherwise mount wherever the agent pointed it),
//   - a link that neither the operator nor root owns: a container made it
//     (in a directory it could write at some earlier apply), or another
//     local user did,
//   - a directory on the way that anyone else can write (an agent's
//     writable mount, another user's directory, a 0777 one): they could
//     swap an entry for a link after the check, and
//   - a source that lies inside, or contains, another agent's writable
//     mount: that agent could replace any directory on the way with a link
//     between this check and the engine's mount.
//
// Sharing one directory between agents is mounting the same source into
// each: a container cannot rename or remove its own mount point, so the
// path to it stays the operator's.
//
// It is pure apart from reading the file system: no engine, no config.
package mountsrc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxLinks bounds the symlinks one walk follows, as the kernel's ELOOP does.
const maxLinks = 40

// Source is one mount source to resolve.
type Source struct {
	Agent    string
	Path     string // absolute and clean: the config's path, lexically resolved
	Writable bool
}

// Result is what one Source resolved to, or why it may not be mounted.
type Result struct {
	// Real is Path with every symlink resolved: no component of it is a
	// link. Set whenever the walk finished, even when Err is a policy error.
	Real string
	Mode fs.FileMode // of Real, from lstat
	// Links are the symlinks the walk crossed, in order.
	Links []Link
	// Err is nil, a *WalkError, or a *LinkError, *OwnerError or *DirError
	// and/or an *OverlapError (errors.As finds each).
	Err error
}

// Link is a symlink the walk crossed: where it is (with every link before it
// resolved), what it says, and who owns it.
type Link struct {
	Path   string
	Target string
	Owner  uint32 // uid
}

// WalkError is a source that cannot be resolved: a missing component, a
// file where a directory is needed, a loop.
type WalkError struct {
	Path string // the component that failed, with every link before it resolved
	Err  error  // fs.ErrNotExist, syscall.ENOTDIR, ...
}

func (e *WalkError) Error() string { return strconv.Quote(e.Path) + ": " + e.Err.Error() }
func (e *WalkError) Unwrap() error { return e.Err }

// LinkError is a symlink inside a writable mount on the way to a source.
type LinkError struct {
	Link   Link
	Writer Source // the writable mount that holds the link
	// WriterReal is Writer.Path resolved.
	WriterReal string
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("the symlink %q -> %q lies inside agent %q's writable mount %s", e.Link.Path, e.Link.Target, e.Writer.Agent, e.WriterReal)
}

// OwnerError is a symlink on the way to a source that neither the operator
// nor root owns: a container made it (an agent's files belong to its uid),
// or another local user did, possibly in a directory an agent could write
// at some earlier apply.
type OwnerError struct {
	Link Link
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("the symlink %q -> %q is owned by uid %d", e.Link.Path, e.Link.Target, e.Link.Owner)
}

// DirError is a directory on the way to a source that someone other than
// the trusted can write: they could swap an entry for a symlink between the
// check and the engine's mount. In a sticky directory (like /tmp) others
// cannot touch entries they do not own, so there Entry names the entry on
// the way, owned by someone untrusted.
type DirError struct {
	Dir        string
	Mode       fs.FileMode
	UID, GID   uint32
	Entry      string // set for the sticky case
	EntryOwner uint32
	// ACL names the access-ACL entry that lets someone untrusted write
	// ("user:40001", "group:50"), when the mode bits alone would pass.
	ACL string
}

func (e *DirError) Error() string {
	if e.ACL != "" {
		return fmt.Sprintf("the directory %q has an ACL entry %s that can write it", e.Dir, e.ACL)
	}
	if e.Entry != "" {
		return fmt.Sprintf("%q in the shared directory %q belongs to uid %d", e.Entry, e.Dir, e.EntryOwner)
	}
	return fmt.Sprintf("the directory %q (mode %04o, uid %d, gid %d) is writable by others", e.Dir, e.Mode.Perm()|stickyBits(e.Mode), e.UID, e.GID)
}

func stickyBits(m fs.FileMode) fs.FileMode {
	if m&fs.ModeSticky != 0 {
		return 0o1000
	}
	return 0
}

// Trust is who may change the path to a source: the operator and root.
type Trust struct {
	UIDs []uint32 // owners whose links are followed and whose directories are trusted
	GIDs []uint32 // groups a group-writable directory may have
}

// OverlapError is a source that lies inside, or contains, another agent's
// writable mount.
type OverlapError struct {
	// Path (this source) Relation ("lies inside" or "contains") OtherPath
	// (Other's source): both resolved, or both as the config names them.
	Path      string
	Relation  string
	Other     Source
	OtherPath string
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("%s %s agent %q's writable mount %s", e.Path, e.Relation, e.Other.Agent, e.OtherPath)
}

// Resolve resolves every source of a run together: whether a link or an
// overlap is allowed depends on every writable mount. A link is followed
// only when a trusted uid owns it, and every directory on the way must be
// writable by the trusted only. Results are in the order of srcs.
func Resolve(srcs []Source, trust Trust) []Result {
	res := make([]Result, len(srcs))
	for i, s := range srcs {
		res[i].Real, res[i].Links, res[i].Err = walk(s.Path)
		if res[i].Err == nil {
			fi, err := os.Lstat(res[i].Real)
			if err != nil {
				res[i].Real, res[i].Err = "", &WalkError{Path: res[i].Real, Err: err}
			} else {
				res[i].Mode = fi.Mode()
			}
		}
	}
	// A writable root that could not be resolved still guards the path the
	// config names: nothing under it is trusted either.
	roots := make([]string, len(srcs))
	for j, w := range srcs {
		roots[j] = res[j].Real
		if roots[j] == "" {
			roots[j] = w.Path
		}
	}
	for i := range srcs {
		if res[i].Err != nil {
			continue
		}
		res[i].Err = policy(i, srcs, res[i], roots, trust)
	}
	return res
}

// policy checks one resolved source against every writable mount: the
// first link that could be planted, and the first overlap, joined when both
// are found.
func policy(i int, srcs []Source, r Result, roots []string, trust Trust) error {
	var link, overlap error
links:
	for _, l := range r.Links {
		for j, w := range srcs {
			if w.Writable && within(filepath.Dir(l.Path), roots[j]) {
				link = &LinkError{Link: l, Writer: w, WriterReal: roots[j]}
				break links
			}
		}
		if !slices.Contains(trust.UIDs, l.Owner) {
			link = &OwnerError{Link: l}
			break
		}
	}
	if link == nil {
		if err := checkDirs(r, trust); err != nil {
			link = err
		}
	}
	// Both as the file writes them (a link may have moved the real path
	// away, the config still nests them) and as they resolve (an
	// operator's link may hide the nesting).
	for j, w := range srcs {
		if !w.Writable || w.Agent == srcs[i].Agent {
			continue
		}
		if rel := nesting(r.Real, roots[j]); rel != "" {
			overlap = &OverlapError{Path: r.Real, Relation: rel, Other: w, OtherPath: roots[j]}
			break
		}
		if rel := nesting(srcs[i].Path, w.Path); rel != "" {
			overlap = &OverlapError{Path: srcs[i].Path, Relation: rel, Other: w, OtherPath: w.Path}
			break
		}
	}
	return errors.Join(link, overlap)
}

// nesting is "lies inside" or "contains" when one path is strictly below
// the other, "" otherwise: the same directory is sharing, and safe (see the
// package doc).
func nesting(p, w string) string {
	switch {
	case p == w:
		return ""
	case within(p, w):
		return "lies inside"
	case within(w, p):
		return "contains"
	}
	return ""
}

// checkDirs requires that only the trusted can change what the walk found:
// every directory whose entries it read (the parents of Real, and of each
// link), and, in a sticky directory others can write, the entry itself.
func checkDirs(r Result, trust Trust) error {
	dirs := map[string]bool{}
	for p := r.Real; p != "/"; p = filepath.Dir(p) {
		dirs[filepath.Dir(p)] = true
	}
	for _, l := range r.Links {
		for p := l.Path; p != "/"; p = filepath.Dir(p) {
			dirs[filepath.Dir(p)] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		fi, err := os.Lstat(d)
		if err != nil {
			return &WalkError{Path: d, Err: unwrapPath(err)}
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return &WalkError{Path: d, Err: errors.New("no owner information")}
		}
		m := fi.Mode()
		sticky := m&fs.ModeSticky != 0
		untrusted := !slices.Contains(trust.UIDs, st.Uid) ||
			(m&0o002 != 0 && !sticky) ||
			(m&0o020 != 0 && !sticky && !slices.Contains(trust.GIDs, st.Gid))
		if untrusted {
			return &DirError{Dir: d, Mode: m, UID: st.Uid, GID: st.Gid}
		}
		// Mode bits are not the whole answer: an access ACL can give
		// anyone write (runner itself suggests setfacl for workspaces).
		if acl, err := untrustedACLWriter(d, trust); err != nil {
			return &WalkError{Path: d, Err: err}
		} else if acl != "" {
			return &DirError{Dir: d, Mode: m, UID: st.Uid, GID: st.Gid, ACL: acl}
		}
		if sticky && m&0o022 != 0 {
			if err := stickyEntries(d, m, r, trust); err != nil {
				return err
			}
		}
	}
	return nil
}

// stickyEntries checks the entries of the sticky directory d on the way:
// there, whoever owns an entry may replace it.
func stickyEntries(d string, mode fs.FileMode, r Result, trust Trust) error {
	paths := []string{r.Real}
	for _, l := range r.Links {
		paths = append(paths, l.Path)
	}
	for _, p := range paths {
		if !within(p, d) || p == d {
			continue
		}
		entry := filepath.Join(d, strings.SplitN(strings.TrimPrefix(p, strings.TrimSuffix(d, "/")+"/"), "/", 2)[0])
		fi, err := os.Lstat(entry)
		if err != nil {
			return &WalkError{Path: entry, Err: unwrapPath(err)}
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || !slices.Contains(trust.UIDs, st.Uid) {
			owner := ^uint32(0)
			if ok {
				owner = st.Uid
			}
			return &DirError{Dir: d, Mode: mode, Entry: entry, EntryOwner: owner}
		}
	}
	return nil
}

// within reports whether p is dir or lies below it (both clean, absolute).
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// walk resolves p as the kernel would, one component at a time, with lstat
// and readlink only; ".." after a link goes up from where the link led.
func walk(p string) (string, []Link, error) {
	if !filepath.IsAbs(p) {
		return "", nil, &WalkError{Path: p, Err: errors.New("not an absolute path")}
	}
	var links []Link
	rest := components(p)
	cur := "/"
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", links, &WalkError{Path: next, Err: unwrapPath(err)}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(rest) > 0 && !fi.IsDir() {
				return "", links, &WalkError{Path: next, Err: errors.New("not a directory")}
			}
			cur = next
			continue
		}
		if len(links) == maxLinks {
			return "", links, &WalkError{Path: next, Err: fmt.Errorf("more than %d symlinks (a loop?)", maxLinks)}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", links, &WalkError{Path: next, Err: unwrapPath(err)}
		}
		owner := ^uint32(0) // unknown: trusted by nobody
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = st.Uid
		}
		links = append(links, Link{Path: next, Target: target, Owner: owner})
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(components(target), rest...)
	}
	return cur, links, nil
}

// components splits a path into its non-empty elements.
func components(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// unwrapPath drops the *fs.PathError wrapper: WalkError names the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// untrustedACLWriter returns the first named user or group entry of path's
// access ACL that may write and is not trusted ("" if none, or no ACL).
// The mask is ignored: it can be widened by whoever owns the directory,
// and a refusal here only asks the operator to use a plainer directory.
func untrustedACLWriter(path string, trust Trust) (string, error) {
	buf := make([]byte, 4+8*64)
	n, err := unix.Lgetxattr(path, "system.posix_acl_access", buf)
	if errors.Is(err, unix.ERANGE) {
		return "an ACL too long to judge", nil
	}
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return aclWriter(buf[:n], trust), nil
}

// aclWriter reads a posix_acl_access value: a 4-byte version, then 8-byte
// entries of tag (16 bits), permissions (16 bits) and id (32 bits).
func aclWriter(b []byte, trust Trust) string {
	const (
		tagUser  = 0x02
		tagGroup = 0x08
		permW    = 0x02
	)
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return "an ACL runner cannot read"
	}
	for e := b[4:]; len(e) >= 8; e = e[8:] {
		tag, perm, id := binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])
		switch {
		case perm&permW == 0:
		case tag == tagUser && !slices.Contains(trust.UIDs, id):
			return "user:" + strconv.FormatUint(uint64(id), 10)
		case tag == tagGroup && !slices.Contains(trust.GIDs, id):
			return "group:" + strconv.FormatUint(uint64(id), 10)
		}
	}
	return ""
}
