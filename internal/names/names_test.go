package names

import "testing"

func TestValid(t *testing.T) {
	for _, ok := range []string{"a", "alice", "eng-1", "a-b-c", "x0123456789012345678901234567890123456789"[:40]} {
		if !Valid(ok) {
			t.Errorf("%q should be valid", ok)
		}
	}
	for _, bad := range []string{"", "A", "1a", "-a", "a_b", "a.b", "a/b", "a b", "é", "a\n", "x0123456789012345678901234567890123456789"} {
		if Valid(bad) {
			t.Errorf("%q should be invalid", bad)
		}
		if err := Check("agent", bad); err == nil {
			t.Errorf("Check(%q) = nil", bad)
		}
	}
}
