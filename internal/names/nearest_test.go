package names

import "testing"

func TestNearest(t *testing.T) {
	agents := []string{"alice", "bob", "eng-1", "eng-2", "reviewer"}
	for name, want := range map[string]string{
		"alise":   "alice", // a substitution
		"alcie":   "alice", // neighbours swapped
		"bo":      "bob",
		"eng1":    "eng-1",
		"eng-3":   "eng-1", // a tie: the first
		"reviwer": "reviewer",
		"stauts":  "",
	} {
		got, ok := Nearest(name, agents)
		if want == "" {
			if ok {
				t.Errorf("Nearest(%q) = %q, want none", name, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("Nearest(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, far := range []string{"x", "zzzzz", "carol", "alice"} {
		if got, ok := Nearest(far, agents); ok {
			t.Errorf("Nearest(%q) = %q: too far (or the name itself) to suggest", far, got)
		}
	}
	if got, _ := Nearest("stauts", []string{"status", "plan"}); got != "status" {
		t.Errorf("Nearest(stauts) = %q", got)
	}
	if d := distance("kitten", "sitting"); d != 3 {
		t.Errorf("distance(kitten, sitting) = %d, want 3", d)
	}
}
