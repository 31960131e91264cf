package engine

import "testing"

func TestTailBufferKeepsTheLastBytes(t *testing.T) {
	b := &TailBuffer{Max: 4}
	b.Write([]byte("ab"))
	b.Write([]byte("cdef"))
	if got := b.String(); got != "cdef" {
		t.Fatalf("got %q, want the last 4 bytes %q", got, "cdef")
	}
	b.Write([]byte("g"))
	if got := b.String(); got != "defg" {
		t.Fatalf("got %q, want %q", got, "defg")
	}
}
