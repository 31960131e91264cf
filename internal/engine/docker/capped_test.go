package docker

import (
	"bytes"
	"testing"
)

func TestCappedKeepsTheFirstBytes(t *testing.T) {
	c := &capped{max: 10}
	for _, p := range []string{"abcd", "efgh", "ijkl", "mnop"} {
		if n, err := c.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if c.b.String() != "abcdefghij" || !c.over {
		t.Errorf("kept %q, over=%v", c.b.String(), c.over)
	}
	d := &capped{max: 10}
	d.Write(bytes.Repeat([]byte("x"), 10))
	if d.over {
		t.Error("exactly max bytes is not over")
	}
}
