package runner

import (
	"strings"
	"testing"
)

// exec runs only as a numeric, non-zero uid read from the container.
func TestExecRefusesRoot(t *testing.T) {
	for u, want := range map[string]string{
		"":          "no user set",
		"0":         "uid 0",
		"0:1000":    "uid 0",
		"root":      "not a numeric uid",
		"agent:100": "not a numeric uid",
		"-1":        "not a numeric uid",
	} {
		if _, err := nonRootUser(u); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("nonRootUser(%q) = %v, want an error saying %q", u, err, want)
		}
	}
	for u, want := range map[string]uint64{"1000": 1000, "41234:41234": 41234} {
		if got, err := nonRootUser(u); err != nil || got != want {
			t.Errorf("nonRootUser(%q) = %d, %v; want %d", u, got, err, want)
		}
	}
	// The digest covers every argument, and where one ends.
	if argvDigest([]string{"a", "bc"}) == argvDigest([]string{"ab", "c"}) {
		t.Error("argv digests collide across argument boundaries")
	}
}
