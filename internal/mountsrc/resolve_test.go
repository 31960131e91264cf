package mountsrc

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// trustMe trusts links the test (the operator here) and root make.
var trustMe = Trust{UIDs: []uint32{0, uint32(os.Geteuid())}, GIDs: []uint32{0, uint32(os.Getegid())}}

// tree builds dirs and links under a fresh directory and returns its real path.
func tree(t *testing.T, dirs []string, links map[string]string) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for at, target := range links {
		target = strings.ReplaceAll(target, "$ROOT", root)
		if err := os.Symlink(target, filepath.Join(root, at)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolveFollowsOperatorLinks(t *testing.T) {
	root := tree(t, []string{"real/sub", "c/d", "ws"}, map[string]string{
		"abs":      "$ROOT/real",
		"rel":      "real",
		"chain":    "rel",
		"up":       "b/..", // b is a link: ".." goes up from where b led
		"b":        "$ROOT/c/d",
		"real/toc": "../c",
	})
	for _, p := range []string{"abs", "rel", "chain", "chain/sub", "up", "real/toc/d", "abs/../ws"} {
		src := filepath.Join(root, p)
		if strings.Contains(p, "..") {
			src = root + "/" + p // as the kernel would see it, uncleaned
		}
		want, err := filepath.EvalSymlinks(src)
		if err != nil {
			t.Fatal(err)
		}
		res := Resolve([]Source{{Agent: "a", Path: src}, {Agent: "b", Path: filepath.Join(root, "ws"), Writable: true}}, trustMe)
		if res[0].Err != nil || res[0].Real != want {
			t.Errorf("%s resolved to %q, %v; want %q", p, res[0].Real, res[0].Err, want)
		}
		if !res[0].Mode.IsDir() {
			t.Errorf("%s: mode %v, want a directory", p, res[0].Mode)
		}
	}
	if res := Resolve([]Source{{Agent: "a", Path: filepath.Join(root, "up")}}, trustMe); filepath.Base(res[0].Real) != "c" || len(res[0].Links) != 2 {
		t.Errorf("up: %+v; want $ROOT/c through two links", res[0])
	}
}

func TestResolveRefusesLinksInWritableMounts(t *testing.T) {
	root := tree(t, []string{"ws/mid-real/x", "host/etc", "other"}, map[string]string{
		"ws/shared": "$ROOT/host/etc",    // the reviewer's redirect: a link at the end
		"ws/mid":    "mid-real",          // a link in the middle
		"ws/dots":   "../../../../../..", // .. tricks inside the link
		"ws/rel":    "../host",           // relative, pointing out of the mount
		"op-link":   "ws/shared",         // the operator's link, into a planted one
	})
	ws := filepath.Join(root, "ws")
	cases := []struct {
		name string
		srcs []Source
	}{
		{"another agent, link at the end", []Source{{"a", ws, true}, {"b", ws + "/shared", false}}},
		{"own agent, link at the end", []Source{{"a", ws, true}, {"a", ws + "/shared", false}}},
		{"own agent, link in the middle", []Source{{"a", ws, true}, {"a", ws + "/mid/x", false}}},
		{"own agent, dots in the link", []Source{{"a", ws, true}, {"a", ws + "/dots/etc", false}}},
		{"own agent, relative link out", []Source{{"a", ws, true}, {"a", ws + "/rel/etc", false}}},
		{"operator's link leading into one", []Source{{"a", ws, true}, {"a", root + "/op-link", false}}},
		{"writable source through a link", []Source{{"a", ws, true}, {"a", ws + "/mid/x", true}}},
	}
	for _, c := range cases {
		res := Resolve(c.srcs, trustMe)
		if res[0].Err != nil {
			t.Errorf("%s: the writable mount itself: %v", c.name, res[0].Err)
		}
		var le *LinkError
		if !errors.As(res[1].Err, &le) {
			t.Errorf("%s: %s resolved to %q, %v; want a LinkError", c.name, c.srcs[1].Path, res[1].Real, res[1].Err)
			continue
		}
		if le.Writer.Agent != "a" || le.WriterReal != ws || filepath.Dir(le.Link.Path) != ws && !strings.HasPrefix(le.Link.Path, ws+"/") {
			t.Errorf("%s: %v; want a link inside %s, agent a", c.name, le, ws)
		}
	}
	// The reviewer's case is also an overlap, though the link moved the
	// real path out of the writable mount: the file nests them.
	res := Resolve([]Source{{"a", ws, true}, {"b", ws + "/shared", false}}, trustMe)
	var oe *OverlapError
	if !errors.As(res[1].Err, &oe) || oe.Relation != "lies inside" {
		t.Errorf("b's ./ws/shared: %v; want the overlap with a's ./ws reported too", res[1].Err)
	}
	// The same link outside every writable mount is the operator's: followed.
	res = Resolve([]Source{{"a", root + "/other", true}, {"b", ws + "/shared", false}}, trustMe)
	if res[1].Err != nil || res[1].Real != root+"/host/etc" {
		t.Errorf("no writable mount around the link: %q, %v; want it followed", res[1].Real, res[1].Err)
	}
}

func TestResolveOverlaps(t *testing.T) {
	root := tree(t, []string{"ws/shared/deep", "other"}, map[string]string{"ws-link": "ws"})
	ws := filepath.Join(root, "ws")
	for _, c := range []struct {
		name     string
		srcs     []Source
		relation string // for srcs[1]; "" = allowed
	}{
		{"inside another's writable mount", []Source{{"a", ws, true}, {"b", ws + "/shared", false}}, "lies inside"},
		{"deep inside, written writable", []Source{{"a", ws, true}, {"b", ws + "/shared/deep", true}}, "lies inside"},
		{"inside, through the operator's link", []Source{{"a", ws, true}, {"b", root + "/ws-link/shared", false}}, "lies inside"},
		{"contains another's writable mount", []Source{{"a", ws + "/shared", true}, {"b", ws, false}}, "contains"},
		{"contains it, the root dir of the config", []Source{{"a", ws + "/shared", true}, {"b", root, false}}, "contains"},
		{"the same directory is sharing", []Source{{"a", ws, true}, {"b", ws, false}}, ""},
		{"the same directory through a link", []Source{{"a", ws, true}, {"b", root + "/ws-link", true}}, ""},
		{"own writable mount, inside", []Source{{"a", ws, true}, {"a", ws + "/shared", false}}, ""},
		{"own writable mount, contains", []Source{{"a", ws + "/shared", true}, {"a", ws, false}}, ""},
		{"read-only mounts may nest", []Source{{"a", ws, false}, {"b", ws + "/shared", false}}, ""},
		{"unrelated", []Source{{"a", ws, true}, {"b", root + "/other", true}}, ""},
	} {
		res := Resolve(c.srcs, trustMe)
		var oe *OverlapError
		switch {
		case c.relation == "" && res[1].Err != nil:
			t.Errorf("%s: %v; want it allowed", c.name, res[1].Err)
		case c.relation != "" && !errors.As(res[1].Err, &oe):
			t.Errorf("%s: %v; want an OverlapError", c.name, res[1].Err)
		case c.relation != "" && (oe.Relation != c.relation || oe.Other.Agent != "a"):
			t.Errorf("%s: %v; want %q agent a's mount", c.name, oe, c.relation)
		}
	}
}

func TestResolveWalkErrors(t *testing.T) {
	root := tree(t, []string{"d"}, map[string]string{"loop1": "loop2", "loop2": "loop1", "dangling": "nope"})
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]error{
		"nope":     fs.ErrNotExist,
		"d/nope":   fs.ErrNotExist,
		"dangling": fs.ErrNotExist,
		"file/x":   nil,
		"loop1":    nil,
	} {
		res := Resolve([]Source{{Agent: "a", Path: filepath.Join(root, p)}}, trustMe)
		var we *WalkError
		if !errors.As(res[0].Err, &we) || (want != nil && !errors.Is(res[0].Err, want)) {
			t.Errorf("%s: %v; want a WalkError (%v)", p, res[0].Err, want)
		}
	}
	res := Resolve([]Source{{Agent: "a", Path: filepath.Join(root, "file")}}, trustMe)
	if res[0].Err != nil || !res[0].Mode.IsRegular() {
		t.Errorf("a regular file: %+v", res[0])
	}
}

// A link nobody trusted made is refused wherever it is, also outside every
// writable mount of the run: a directory an agent could write at an earlier
// apply (or another local user's) keeps what was planted there. The test's
// links are its own, so trusting another uid stands for an agent's link.
func TestResolveRefusesLinksOfOtherOwners(t *testing.T) {
	root := tree(t, []string{"old-ws/real", "host/etc"}, map[string]string{
		"old-ws/shared": "$ROOT/host/etc",
		"via":           "old-ws/shared",
	})
	me := uint32(os.Geteuid())
	notMe := Trust{UIDs: []uint32{me + 1}}
	for _, p := range []string{"old-ws/shared", "via"} {
		res := Resolve([]Source{{Agent: "b", Path: root + "/" + p}}, notMe)
		oe, ok := errors.AsType[*OwnerError](res[0].Err)
		if !ok || oe.Link.Owner != me || oe.Link.Path != root+"/"+p {
			t.Errorf("%s: %q, %v; want the first untrusted link refused", p, res[0].Real, res[0].Err)
		}
		if res := Resolve([]Source{{Agent: "b", Path: root + "/" + p}}, trustMe); res[0].Err != nil {
			t.Errorf("%s with its owner trusted: %v", p, res[0].Err)
		}
	}
	if res := Resolve([]Source{{Agent: "b", Path: root + "/via"}}, Trust{}); res[0].Err == nil {
		t.Error("trusting nobody followed a link")
	}
}

// Every directory on the way must be writable by the trusted only: anyone
// else could swap an entry for a link between the check and the mount.
func TestResolveRefusesDirectoriesOthersCanWrite(t *testing.T) {
	root := tree(t, []string{"open/sub", "group/sub", "sticky/mine/x", "fine/sub", "real"}, map[string]string{
		"fine/link": "../open/sub", // a trusted link into an open directory
		"open/link": "../real",     // a link in an open directory: its directory is checked
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(root+"/open", 0o777))
	must(os.Chmod(root+"/group", 0o775))
	must(os.Chmod(root+"/sticky", 0o777|os.ModeSticky))
	for _, c := range []struct {
		path  string
		trust Trust
		dir   string // "" = allowed
	}{
		{"open/sub", trustMe, "open"},
		{"open", trustMe, ""}, // the writable directory itself is what is mounted
		{"fine/link", trustMe, "open"},
		{"open/link", trustMe, "open"},
		{"group/sub", trustMe, ""}, // our own group
		{"group/sub", Trust{UIDs: trustMe.UIDs}, "group"},
		{"sticky/mine/x", trustMe, ""}, // our entry in a sticky directory
		{"sticky/mine/x", Trust{UIDs: []uint32{uint32(os.Geteuid()) + 1}}, "/"},
		{"fine/sub", trustMe, ""},
	} {
		res := Resolve([]Source{{Agent: "a", Path: root + "/" + c.path}}, c.trust)
		de, ok := errors.AsType[*DirError](res[0].Err)
		switch {
		case c.dir == "" && res[0].Err != nil:
			t.Errorf("%s: %v; want it allowed", c.path, res[0].Err)
		case c.dir != "" && !ok:
			t.Errorf("%s: %v; want a DirError", c.path, res[0].Err)
		case c.dir != "" && c.dir != "/" && de.Dir != root+"/"+c.dir:
			t.Errorf("%s: %v; want %s named", c.path, de, c.dir)
		}
	}
}

// In a sticky directory others can write (like /tmp), an entry on the way
// must be trusted-owned: its owner may replace it.
func TestResolveRefusesOthersEntriesInStickyDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("needs root to give an entry to another uid; CI runs as root")
		return
	}
	root := tree(t, []string{"sticky/theirs/x", "sticky/mine"}, nil)
	if err := os.Chmod(root+"/sticky", 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(root+"/sticky/theirs", 40007, 40007); err != nil {
		t.Fatal(err)
	}
	for p, bad := range map[string]bool{"sticky/theirs": true, "sticky/theirs/x": true, "sticky/mine": false} {
		res := Resolve([]Source{{Agent: "a", Path: root + "/" + p}}, trustMe)
		de, ok := errors.AsType[*DirError](res[0].Err)
		switch {
		case !bad && res[0].Err != nil:
			t.Errorf("%s: %v; want it allowed", p, res[0].Err)
		case bad && (!ok || de.Entry != root+"/sticky/theirs" || de.EntryOwner != 40007):
			t.Errorf("%s: %v; want the entry owned by 40007 named", p, res[0].Err)
		}
	}
}

// aclValue encodes a posix_acl_access xattr: the owner, a named entry,
// group, mask and other.
func aclValue(tag uint16, perm uint16, id uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	entry := func(tag, perm uint16, id uint32) {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, perm)
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	entry(0x01, 7, 0xffffffff)
	entry(tag, perm, id)
	entry(0x04, 5, 0xffffffff)
	entry(0x10, 7, 0xffffffff)
	entry(0x20, 5, 0xffffffff)
	return b
}

// Mode bits can say "only the owner writes" while an access ACL lets
// another uid write (review finding): that directory is refused on the way.
func TestResolveRefusesDirectoriesAnACLLetsOthersWrite(t *testing.T) {
	root := tree(t, []string{"acl/sub", "aclread/sub", "aclme/sub"}, nil)
	me := uint32(os.Geteuid())
	for dir, v := range map[string][]byte{
		"acl":     aclValue(0x02, 7, 40001), // user:40001:rwx
		"aclread": aclValue(0x02, 5, 40001), // user:40001:r-x
		"aclme":   aclValue(0x02, 7, me),    // the operator itself
	} {
		if err := unix.Lsetxattr(root+"/"+dir, "system.posix_acl_access", v, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				t.Fatalf("the test directory's filesystem has no ACLs (%v): run the test on one that does", err)
			}
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{"acl/sub": "user:40001", "aclread/sub": "", "aclme/sub": ""} {
		res := Resolve([]Source{{Agent: "a", Path: root + "/" + path}}, trustMe)
		de, ok := errors.AsType[*DirError](res[0].Err)
		switch {
		case want == "" && res[0].Err != nil:
			t.Errorf("%s: %v; want it allowed", path, res[0].Err)
		case want != "" && (!ok || de.ACL != want):
			t.Errorf("%s: %v; want a DirError naming %s", path, res[0].Err, want)
		}
	}
}
