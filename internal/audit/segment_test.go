package audit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var small = Options{Max: 8 << 10, SegmentMax: 2 << 10}

func appendN(t *testing.T, l *Log, n int, actor string) {
	t.Helper()
	for i := range n {
		if err := l.Append(Event{Event: "send", Actor: actor, Target: "eng-2", Detail: fmt.Sprintf("message %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func diskUse(t *testing.T, path string) (total int64, files int) {
	t.Helper()
	fs, err := SegmentFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	return total, len(fs)
}

// The log stays within its cap: old segments go, the newest says what went,
// and the kept chain verifies from the first kept entry, linked to the last
// dropped one.
func TestSegmentsStayUnderTheCapAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenWith(path, small)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 400, "eng-1")
	l.Close()
	total, files := diskUse(t, path)
	if total > small.Max+maxLine {
		t.Errorf("log uses %d bytes in %d files, cap %d", total, files, small.Max)
	}
	rep, err := VerifyReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dropped == nil || rep.FirstSeq != rep.Dropped.Seq+1 || rep.Segments != files || rep.Segments < 2 {
		t.Fatalf("report %+v, want a drop the kept chain starts after, over %d files", rep, files)
	}
	if uint64(rep.Entries) != rep.LastSeq-rep.FirstSeq+1 {
		t.Errorf("report %+v: entries do not span FirstSeq..LastSeq", rep)
	}
	// Every send is there once, in order, from where the kept chain starts.
	var sends []int
	if err := Read(path, func(e Event) error {
		if e.Event == "send" {
			n, _ := strconv.Atoi(strings.TrimPrefix(e.Detail, "message "))
			sends = append(sends, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(sends) == 0 || sends[len(sends)-1] != 399 {
		t.Fatalf("Read gave %d sends ending %v, want the last to be 399", len(sends), sends[len(sends)-1:])
	}
	for i := 1; i < len(sends); i++ {
		if sends[i] != sends[i-1]+1 {
			t.Fatalf("Read: send %d follows %d", sends[i], sends[i-1])
		}
	}
	// A writer that is given no cap follows the one the log records.
	l2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.max != small.Max {
		t.Errorf("reopened log's cap = %d, want the recorded %d", l2.max, small.Max)
	}
}

// Deleting the oldest kept segment by hand, or replacing a segment with
// another, is not a drop at the cap: Verify says so.
func TestSegmentTamperingDetected(t *testing.T) {
	mk := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := OpenWith(path, Options{Max: 1 << 20, SegmentMax: 2 << 10})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 120, "eng-1")
		l.Close()
		if n, err := Verify(path); err != nil || n < 120 {
			t.Fatalf("Verify = %d, %v", n, err)
		}
		return path
	}
	t.Run("oldest deleted", func(t *testing.T) {
		path := mk(t)
		os.Remove(segmentPath(path, 1))
		if _, err := Verify(path); err == nil || !strings.Contains(err.Error(), "segment 1 is missing") {
			t.Errorf("Verify = %v, want segment 1 missing", err)
		}
	})
	t.Run("middle deleted", func(t *testing.T) {
		path := mk(t)
		os.Remove(segmentPath(path, 2))
		if _, err := Verify(path); err == nil || !strings.Contains(err.Error(), "segment 2 is missing") {
			t.Errorf("Verify = %v, want segment 2 missing", err)
		}
	})
	t.Run("segments swapped", func(t *testing.T) {
		path := mk(t)
		a, b := segmentPath(path, 2), segmentPath(path, 3)
		os.Rename(a, a+"x")
		os.Rename(b, a)
		os.Rename(a+"x", b)
		if _, err := Verify(path); err == nil || !strings.Contains(err.Error(), "header of segment 2") {
			t.Errorf("Verify = %v, want a header mismatch", err)
		}
	})
}

// A writer stopped after keeping the newest segment under its number but
// before replacing it leaves two names for one file: Verify counts it once
// and the next segment starts as usual.
func TestInterruptedRotationLeavesOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	o := Options{Max: 1 << 20, SegmentMax: 2 << 10}
	l, err := OpenWith(path, o)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 20, "eng-1")
	l.Close()
	ns, _ := segmentNumbers(path)
	live := uint64(len(ns) + 1)
	if err := os.Link(path, segmentPath(path, live)); err != nil {
		t.Fatal(err)
	}
	n0, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err = OpenWith(path, o)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 40, "eng-1")
	l.Close()
	if n, err := Verify(path); err != nil || n < n0+40 {
		t.Fatalf("Verify = %d, %v; want at least %d", n, err, n0+40)
	}
}

// Several writers, each with its own file description (as separate
// processes have), extend one chain across segment changes.
func TestConcurrentWritersShareOneChainAcrossSegments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	o := Options{Max: 64 << 10, SegmentMax: 2 << 10}
	var wg sync.WaitGroup
	for i := range 4 {
		l, err := OpenWith(path, o)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		wg.Go(func() {
			for j := range 50 {
				if err := l.AppendBatch([]Event{{Event: "send", Actor: strconv.Itoa(i), Detail: strconv.Itoa(j)}, {Event: "deliver"}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rep, err := VerifyReport(path)
	if err != nil || rep.Segments < 3 {
		t.Fatalf("VerifyReport = %+v, %v; want a chain over several segments", rep, err)
	}
}

// The same with real processes: the test binary appending as a child.
func TestProcessesShareOneChainAcrossSegments(t *testing.T) {
	if p := os.Getenv("AUDIT_TEST_APPEND"); p != "" {
		l, err := OpenWith(p, Options{Max: 1 << 20, SegmentMax: 2 << 10})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for j := range 100 {
			if err := l.Append(Event{Event: "send", Actor: strconv.Itoa(os.Getpid()), Detail: strconv.Itoa(j)}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	var cmds []*exec.Cmd
	for range 3 {
		c := exec.Command(os.Args[0], "-test.run=^TestProcessesShareOneChainAcrossSegments$")
		c.Env = append(os.Environ(), "AUDIT_TEST_APPEND="+path)
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	rep, err := VerifyReport(path)
	if err != nil {
		t.Fatal(err)
	}
	sends := 0
	Read(path, func(e Event) error {
		if e.Event == "send" {
			sends++
		}
		return nil
	})
	if sends != 300 || rep.Segments < 3 || rep.Dropped != nil {
		t.Errorf("%d sends over %d segments (dropped %+v), want 300 over several, none dropped", sends, rep.Segments, rep.Dropped)
	}
}
