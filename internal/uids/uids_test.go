package uids

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func agents(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("eng-%d", i+1)
	}
	return out
}

func TestAllocateDistinctInRange(t *testing.T) {
	got, err := Allocate(Request{Run: "team", Agents: agents(500)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]string{}
	for a, id := range got {
		if !InRange(id) {
			t.Errorf("%s: uid %d outside %d-%d", a, id, First, Last)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share uid %d", a, other, id)
		}
		seen[id] = a
	}
	if len(got) != 500 {
		t.Fatalf("allocated %d of 500", len(got))
	}
}

// Adding and removing agents never moves the others.
func TestAllocateStable(t *testing.T) {
	base, err := Allocate(Request{Run: "team", Agents: agents(20)})
	if err != nil {
		t.Fatal(err)
	}
	// The same request again, from scratch: the same answer.
	again, _ := Allocate(Request{Run: "team", Agents: agents(20)})
	for a, id := range base {
		if again[a] != id {
			t.Errorf("%s: %d then %d for the same request", a, id, again[a])
		}
	}
	// Add agents whose preferred slot is exactly an existing agent's: with
	// the existing containers' uids as Current they must not take them.
	var extra []string
	for i := 0; len(extra) < 3 && i < 1_000_000; i++ {
		n := fmt.Sprintf("x%d", i)
		for _, id := range base {
			if Preferred("team", n) == id {
				extra = append(extra, n)
				break
			}
		}
	}
	if len(extra) < 3 {
		t.Fatal("found no colliding names to test with")
	}
	grown, err := Allocate(Request{Run: "team", Agents: append(agents(20), extra...), Current: base})
	if err != nil {
		t.Fatal(err)
	}
	for a, id := range base {
		if grown[a] != id {
			t.Errorf("adding agents moved %s from %d to %d", a, id, grown[a])
		}
	}
	for _, n := range extra {
		for a, id := range base {
			if grown[n] == id {
				t.Errorf("new agent %s took %s's uid %d", n, a, id)
			}
		}
	}
	// Remove half: the rest keep theirs.
	shrunk, _ := Allocate(Request{Run: "team", Agents: agents(10), Current: grown})
	for a, id := range shrunk {
		if base[a] != id {
			t.Errorf("removing agents moved %s from %d to %d", a, base[a], id)
		}
	}
}

func TestAllocateAvoidsTakenAndConflicts(t *testing.T) {
	a := "alice"
	p := Preferred("r", a)
	// Its preferred uid is another run's, the next is a host account: it
	// gets the one after.
	got, err := Allocate(Request{
		Run: "r", Agents: []string{a},
		Taken:    map[uint32]string{p: "other/bob"},
		Conflict: func(id uint32) string { return map[bool]string{true: "account"}[id == next(p)] },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := next(next(p)); got[a] != want {
		t.Errorf("uid %d, want %d (preferred %d taken, %d a host account)", got[a], want, p, next(p))
	}
	// A current uid that became a host account is given up.
	got, _ = Allocate(Request{Run: "r", Agents: []string{a}, Current: map[string]uint32{a: 40010},
		Conflict: func(id uint32) string { return map[bool]string{true: "account"}[id == 40010] }})
	if got[a] == 40010 {
		t.Error("kept a uid that is now a host account")
	}
	// A current uid outside the range (e.g. the old default 1000) is not kept.
	got, _ = Allocate(Request{Run: "r", Agents: []string{a}, Current: map[string]uint32{a: 1000}})
	if got[a] == 1000 || !InRange(got[a]) {
		t.Errorf("uid %d: an out-of-range current uid must be replaced", got[a])
	}
	// Two agents of a run claiming one current uid: only one keeps it.
	got, _ = Allocate(Request{Run: "r", Agents: []string{"a", "b"}, Current: map[string]uint32{"a": 40100, "b": 40100}})
	if got["a"] == got["b"] {
		t.Errorf("a and b share uid %d", got["a"])
	}
	// Every uid taken: a clear error.
	_, err = Allocate(Request{Run: "r", Agents: []string{a}, Conflict: func(uint32) string { return "x" }})
	if err == nil || !strings.Contains(err.Error(), "no free uid") || !strings.Contains(err.Error(), "user =") {
		t.Errorf("exhausted range: %v", err)
	}
}

func next(id uint32) uint32 { return First + (id-First+1)%Count }

func writeEtc(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(root, "etc", n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestHostConflicts(t *testing.T) {
	root := writeEtc(t, map[string]string{
		"passwd": "# comment\nroot:x:0:0:root:/root:/bin/sh\n+nis\nbob:x:40001:100::/home/bob:/bin/sh\nrunner-ci:x:1500:1500::/home/runner-ci:/bin/bash\n",
		"group":  "root:x:0:\nbuilders:x:40002:\n",
		"subuid": "runner-ci:100000:65536\nalice:40100:10\n",
		"subgid": "runner-ci:100000:65536\ncarol:40200:10\n",
	})
	h, err := ReadHost(root)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity()
	for _, c := range []struct {
		id   uint32
		want string
	}{
		{40001, `account "bob"`},
		{40002, `group "builders"`},
		{40105, "alice's subordinate uids"},
		{40205, "carol's subordinate gids"},
		{40003, ""},
	} {
		got := h.Conflict(id, c.id)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("rootful %d: %q, want %q", c.id, got, c.want)
		}
	}

	// Rootless as runner-ci: container uid U is host 100000+U-1, inside
	// runner-ci's own range (fine) unless an account sits there.
	m, err := Rootless(h, 1500, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if hu, _ := m.HostUID(40000); hu != 139999 {
		t.Errorf("rootless 40000 -> %d, want 139999", hu)
	}
	if hu, _ := m.HostUID(0); hu != 1500 {
		t.Errorf("rootless 0 -> %d, want 1500", hu)
	}
	if got := h.Conflict(m, 40001); got != "" {
		t.Errorf("rootless 40001 (host 140000, in runner-ci's own range): %q, want no conflict", got)
	}
	if _, ok := m.HostUID(65537); ok {
		t.Error("rootless 65537 must be unmapped with a 65536 range")
	}
	if got := h.Conflict(m, 65537); !strings.Contains(got, "no host uid") {
		t.Errorf("rootless unmapped: %q", got)
	}
	h.Users[140000] = "squatter"
	if got := h.Conflict(m, 40001); !strings.Contains(got, "squatter") {
		t.Errorf("rootless 40001 with an account at host 140000: %q", got)
	}
	if _, err := Rootless(h, 1000, 1000); err == nil {
		t.Error("a rootless user without subuid ranges must be an error")
	}

	// userns-remap to runner-ci's range: container U = host 100000+U.
	r, err := Remap(h, 100000, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if hu, _ := r.HostUID(40000); hu != 140000 {
		t.Errorf("remap 40000 -> %d, want 140000", hu)
	}
	if got := h.Conflict(r, 40000); !strings.Contains(got, "squatter") {
		t.Errorf("remap 40000: %q", got)
	}
}

func TestReadHostErrors(t *testing.T) {
	if _, err := ReadHost(writeEtc(t, map[string]string{"group": "g:x:1:\n"})); err == nil {
		t.Error("a host without /etc/passwd must be an error")
	}
	if _, err := ReadHost(writeEtc(t, map[string]string{"passwd": "a:x:notanumber:1::/:/bin/sh\n", "group": ""})); err == nil || !strings.Contains(err.Error(), "passwd:1") {
		t.Errorf("bad uid: %v", err)
	}
	h, err := ReadHost(writeEtc(t, map[string]string{"passwd": "a:x:1:1::/:/bin/sh\n", "group": "a:x:1:\n"}))
	if err != nil || len(h.SubUID) != 0 {
		t.Errorf("no subuid file is fine: %v %v", h, err)
	}
}

func TestParseIDMap(t *testing.T) {
	es, err := ParseIDMap("         0       1500          1\n         1     100000      65536\n")
	if err != nil || len(es) != 2 || es[1] != (Extent{1, 100000, 65536}) {
		t.Fatalf("%v %v", es, err)
	}
	m := Mapping{Kind: "rootless", UID: es, GID: es}
	if hu, ok := m.HostUID(40000); !ok || hu != 139999 {
		t.Errorf("%d %v", hu, ok)
	}
	if _, err := ParseIDMap("0 1"); err == nil {
		t.Error("short line accepted")
	}
}

func TestParseUser(t *testing.T) {
	if u, g, ok := ParseUser("40001:40001"); !ok || u != 40001 || g != 40001 {
		t.Error(u, g, ok)
	}
	if u, g, ok := ParseUser("7"); !ok || u != 7 || g != 7 {
		t.Error(u, g, ok)
	}
	if _, _, ok := ParseUser("agent"); ok {
		t.Error("names are not numeric")
	}
	if User(40001) != "40001:40001" {
		t.Error(User(40001))
	}
}
