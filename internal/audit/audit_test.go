package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(Event{Event: "send", Actor: "eng-1", Target: "eng-2", Detail: strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func rewrite(t *testing.T, path string, ls [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestChainVerifies(t *testing.T) {
	path := writeLog(t, 5)
	n, err := Verify(path)
	if err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v; want 5, nil", n, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
}

func TestTamperingDetected(t *testing.T) {
	cases := map[string]struct {
		edit     func([][]byte) [][]byte
		wantGood int
	}{
		"edit detail": {func(ls [][]byte) [][]byte {
			ls[2] = bytes.Replace(ls[2], []byte(`"detail":"xx"`), []byte(`"detail":"xy"`), 1)
			return ls
		}, 2},
		"edit and rehash": {func(ls [][]byte) [][]byte {
			// A forger who recomputes the line's own hash still breaks the
			// next line's link.
			e, err := parseLine(bytes.TrimSuffix(ls[1], []byte("\n")))
			if err != nil {
				panic(err)
			}
			e.Actor = "operator"
			b, _ := e.seal()
			ls[1] = append(b, '\n')
			return ls
		}, 2},
		"non-canonical spacing": {func(ls [][]byte) [][]byte {
			ls[3] = bytes.Replace(ls[3], []byte(`,"event"`), []byte(`, "event"`), 1)
			return ls
		}, 3},
		"delete middle":  {func(ls [][]byte) [][]byte { return append(ls[:2:2], ls[3:]...) }, 2},
		"delete first":   {func(ls [][]byte) [][]byte { return ls[1:] }, 0},
		"reorder":        {func(ls [][]byte) [][]byte { ls[1], ls[3] = ls[3], ls[1]; return ls }, 1},
		"duplicate line": {func(ls [][]byte) [][]byte { return append(ls[:3:3], ls[2:]...) }, 3},
		"cut mid-line":   {func(ls [][]byte) [][]byte { ls[4] = ls[4][:10]; return ls }, 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeLog(t, 5)
			rewrite(t, path, tc.edit(lines(t, path)))
			n, err := Verify(path)
			if err == nil {
				t.Fatalf("Verify accepted a tampered log (%d lines)", n)
			}
			if n != tc.wantGood {
				t.Errorf("Verify = %d good lines, want %d (err: %v)", n, tc.wantGood, err)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("error does not name the line: %v", err)
			}
		})
	}
}

func TestReopenContinuesChain(t *testing.T) {
	path := writeLog(t, 3)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Event{Event: "connect", Actor: "eng-1"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n, err := Verify(path); err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Run("damaged last line", func(t *testing.T) {
		path := writeLog(t, 2)
		ls := lines(t, path)
		ls[1] = bytes.Replace(ls[1], []byte("eng-1"), []byte("eng-9"), 1)
		rewrite(t, path, ls)
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("Open = %v, want a damaged-line error", err)
		}
	})
	t.Run("partial last line after a damaged one", func(t *testing.T) {
		// A torn tail is repaired only when what precedes it is sound.
		path := writeLog(t, 2)
		ls := lines(t, path)
		ls[1] = bytes.Replace(ls[1], []byte("eng-1"), []byte("eng-9"), 1)
		rewrite(t, path, append(ls, []byte(`{"seq":3`)))
		before, _ := os.ReadFile(path)
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("Open = %v, want a damaged-line error", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Error("Open changed a file it refused")
		}
	})
	t.Run("readable by others", func(t *testing.T) {
		path := writeLog(t, 1)
		os.Chmod(path, 0o644)
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("Open = %v, want a mode error", err)
		}
	})
}

// The relay and, say, `runner destroy` append to the same run's log from two
// processes: the chain must stay one chain.
func TestTwoWritersShareOneChain(t *testing.T) {
	path := writeLog(t, 1)
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for _, l := range []*Log{a, b, a, b} {
		wg.Go(func() {
			for range 10 {
				if err := l.Append(Event{Event: "send", Actor: "eng-1"}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n, err := Verify(path); err != nil || n != 41 {
		t.Fatalf("Verify = %d, %v; want 41, nil", n, err)
	}
}

func TestHostileFieldsAreNeutralised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	evil := "\x1b]0;pwned\x07\u202e\u0085" + strings.Repeat("é", 2000) + "\xff"
	if err := l.Append(Event{Event: "deny", Actor: evil, Target: evil, Detail: evil}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Event{Event: "Bad-Name"}); err == nil {
		t.Error("Append accepted an invalid event name")
	}
	l.Close()
	b, _ := os.ReadFile(path)
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\u0085"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("log contains raw %q", bad)
		}
	}
	if len(b) > maxLine {
		t.Errorf("line is %d bytes, want <= %d", len(b), maxLine)
	}
	if n, err := Verify(path); err != nil || n != 1 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 10 {
				if err := l.Append(Event{Time: time.Now(), Event: "send", Actor: string(rune('a' + i))}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	if n, err := Verify(path); err != nil || n != 80 {
		t.Fatalf("Verify = %d, %v; want 80, nil", n, err)
	}
}

func TestReadGivesBackEveryEventAndRefusesAnEditedLine(t *testing.T) {
	path := writeLog(t, 3)
	var got []Event
	if err := Read(path, func(e Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Event != "send" || got[2].Actor != "eng-1" || got[2].Detail != "xx" || got[2].Time.IsZero() {
		t.Fatalf("Read gave %+v", got)
	}
	ls := lines(t, path)
	ls[1] = bytes.Replace(ls[1], []byte(`"eng-2"`), []byte(`"eng-3"`), 1)
	rewrite(t, path, ls)
	if err := Read(path, func(Event) error { return nil }); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Read of an edited line: %v, want an error naming line 2", err)
	}
}

// The relay's group commit records a whole batch of decisions with one
// AppendBatch: the lines are consecutive, in order, and extend the chain a
// second process is also extending.
func TestAppendBatchWritesConsecutiveChainedLines(t *testing.T) {
	path := writeLog(t, 2)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendBatch(nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	if got := len(lines(t, path)); got != 2 {
		t.Fatalf("empty batch wrote lines: %d, want 2", got)
	}
	batch := []Event{{Event: "send", Actor: "a"}, {Event: "deliver", Actor: "b"}, {Event: "send", Actor: "c"}}
	if err := l.AppendBatch(batch); err != nil {
		t.Fatal(err)
	}
	if err := other.Append(Event{Event: "deny", Actor: "d"}); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendBatch(batch[:2]); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendBatch([]Event{{Event: "send"}, {Event: "Bad-Name"}}); err == nil {
		t.Error("AppendBatch accepted a batch with an invalid event name")
	}
	l.Close()
	other.Close()
	if n, err := Verify(path); err != nil || n != 8 {
		t.Fatalf("Verify = %d, %v; want 8, nil", n, err)
	}
	var actors []string
	if err := Read(path, func(e Event) error { actors = append(actors, e.Actor); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(actors[2:], ","); got != "a,b,c,d,a,b" {
		t.Errorf("actors after the first two = %s, want a,b,c,d,a,b (a refused batch writes nothing)", got)
	}
}
