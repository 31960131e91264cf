package runner

import (
	"strings"
	"sync"
	"testing"
)

func TestPrefixWriterWholeLines(t *testing.T) {
	var out strings.Builder
	var mu sync.Mutex
	a := &prefixWriter{out: &out, mu: &mu, prefix: "a   | "}
	b := &prefixWriter{out: &out, mu: &mu, prefix: "bob | "}
	a.Write([]byte("one\ntw"))
	b.Write([]byte("x\n"))
	a.Write([]byte("o\nthr"))
	a.flush()
	b.flush()
	want := "a   | one\nbob | x\na   | two\na   | thr\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
