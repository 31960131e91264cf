package transcript

import (
	"bytes"
	"testing"
	"time"
)

// The chain's cost on the recorder's path: a pane printing fast (full
// chunks) and one printing a line at a time (coalesced).
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{MaxChunk, 80} {
		b.Run(map[int]string{MaxChunk: "32KiB", 80: "80B"}[size], func(b *testing.B) {
			w, err := Open(b.TempDir(), "a", 1<<30, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			p := bytes.Repeat([]byte("x"), size)
			t0 := time.Now()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				if err := w.Write(t0.Add(time.Duration(i)*time.Microsecond), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Verifying a full default-size transcript's worth of segments.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	w, err := Open(dir, "a", 16<<20, 0)
	if err != nil {
		b.Fatal(err)
	}
	p := bytes.Repeat([]byte("y"), MaxChunk)
	for range 400 { // ~13 MiB of output
		w.Write(time.Now(), p)
	}
	w.Close()
	v := mustVerifyB(b, dir)
	b.SetBytes(v.Bytes)
	b.ResetTimer()
	for range b.N {
		mustVerifyB(b, dir)
	}
}

func mustVerifyB(b *testing.B, dir string) Verified {
	v, err := Verify(dir, "a")
	if err != nil {
		b.Fatal(err)
	}
	return v
}
