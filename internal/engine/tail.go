package engine

import "sync"

// TailBuffer keeps the last Max bytes written to it: a stream's standard
// error, whose end says why it stopped, without holding all of it.
type TailBuffer struct {
	mu  sync.Mutex
	Max int
	b   []byte
}

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
