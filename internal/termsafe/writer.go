package termsafe

import (
	"io"
	"sync"
)

// Writer filters everything written to it before passing it on. Write
// reports len(p) when the filtered bytes were written, however many they
// were; it is safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	filter func(dst, p []byte) []byte
	buf    []byte
}

// NewViewWriter passes what is written through a View.
func NewViewWriter(w io.Writer) *Writer {
	v := new(View)
	return &Writer{w: w, filter: v.Filter}
}

// NewPlainWriter passes what is written through a Plain filter.
func NewPlainWriter(w io.Writer) *Writer {
	p := new(Plain)
	return &Writer{w: w, filter: p.Filter}
}

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.filter(w.buf[:0], p)
	if len(w.buf) > 0 {
		if _, err := w.w.Write(w.buf); err != nil {
			return 0, err
		}
	}
	if cap(w.buf) > 64<<10 {
		w.buf = nil // do not keep a large burst's buffer
	}
	return len(p), nil
}
