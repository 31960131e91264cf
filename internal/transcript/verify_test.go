package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// writeSegments makes a transcript of several segments, none dropped, and
// returns its directory.
func writeSegments(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, "a", 1<<20, MinSegment)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	for i := 0; i < 400; i++ {
		// A second apart: one record each.
		if err := w.Write(t0.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("line %04d\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if v := mustVerify(t, dir, "a"); v.Segments < 5 {
		t.Fatalf("only %d segments", v.Segments)
	}
	return dir
}

func segLines(t *testing.T, dir string, n uint64) [][]byte {
	t.Helper()
	b, err := os.ReadFile(SegmentPath(dir, "a", n))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func setLines(t *testing.T, dir string, n uint64, ls [][]byte) {
	t.Helper()
	if err := os.WriteFile(SegmentPath(dir, "a", n), bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Every way of changing a transcript after the fact that the chain can see
// is reported, naming the first broken segment and line.
func TestVerifyDetectsTampering(t *testing.T) {
	cases := map[string]struct {
		edit func(t *testing.T, dir string)
		want string // in the error
	}{
		"edit output": {func(t *testing.T, dir string) {
			ls := segLines(t, dir, 3)
			var e entry
			json.Unmarshal(ls[2], &e)
			edited := bytes.Replace(ls[2], []byte(fmt.Sprintf(`"b":"%s"`, b64(e.B))), []byte(fmt.Sprintf(`"b":"%s"`, b64([]byte("rm -rf /\r\n")))), 1)
			if bytes.Equal(edited, ls[2]) {
				t.Fatal("no edit")
			}
			ls[2] = edited
			setLines(t, dir, 3, ls)
		}, "000003.log line 3: hash does not match"},
		"edit and rehash": {func(t *testing.T, dir string) {
			// A forger who recomputes the record's own hash still breaks
			// the next record's link.
			ls := segLines(t, dir, 3)
			e, err := parse(bytes.TrimSuffix(ls[2], []byte("\n")))
			if err != nil {
				t.Fatal(err)
			}
			e.B = []byte("forged\r\n")
			ls[2], _ = e.seal()
			setLines(t, dir, 3, ls)
		}, "000003.log line 4: does not link"},
		"delete a record": {func(t *testing.T, dir string) {
			ls := segLines(t, dir, 3)
			setLines(t, dir, 3, append(ls[:2], ls[3:]...))
		}, "000003.log line 3: sequence number"},
		"swap records": {func(t *testing.T, dir string) {
			ls := segLines(t, dir, 3)
			ls[2], ls[3] = ls[3], ls[2]
			setLines(t, dir, 3, ls)
		}, "000003.log line 3: sequence number"},
		"truncate a segment at a line": {func(t *testing.T, dir string) {
			ls := segLines(t, dir, 3)
			setLines(t, dir, 3, ls[:len(ls)-2])
		}, "000004.log line 1: sequence number"},
		"truncate a segment mid-line": {func(t *testing.T, dir string) {
			b, _ := os.ReadFile(SegmentPath(dir, "a", 3))
			os.WriteFile(SegmentPath(dir, "a", 3), b[:len(b)-40], 0o600)
		}, "000003.log line"},
		"empty a segment": {func(t *testing.T, dir string) {
			os.WriteFile(SegmentPath(dir, "a", 3), nil, 0o600)
		}, "000003.log: empty segment"},
		"delete a middle segment": {func(t *testing.T, dir string) {
			os.Remove(SegmentPath(dir, "a", 3))
		}, "000004.log: segment 4 follows segment 2: segments 3 to 3 are missing"},
		"delete the oldest segment": {func(t *testing.T, dir string) {
			os.Remove(SegmentPath(dir, "a", 1))
		}, "the transcript starts at segment 2: segments 1 to 1 are missing and were not dropped"},
		"add a line": {func(t *testing.T, dir string) {
			ls := segLines(t, dir, 2)
			setLines(t, dir, 2, append(ls, []byte(`{"seq":99,"t":"2025-06-01T00:00:00Z","b":"aGk=","prev":"x","hash":"y"}`+"\n")))
		}, "000002.log line"},
		"move a header": {func(t *testing.T, dir string) {
			ls := segLines(t, dir, 2)
			ls[0], ls[1] = ls[1], ls[0]
			setLines(t, dir, 2, ls)
		}, "000002.log line 1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeSegments(t)
			c.edit(t, dir)
			_, err := Verify(dir, "a")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// A forged drop notice cannot excuse deleted segments: the header that
// says so is itself in the chain.
func TestVerifyForgedDrop(t *testing.T) {
	dir := writeSegments(t)
	v := mustVerify(t, dir, "a")
	ls := segLines(t, dir, v.Last)
	e, err := parse(bytes.TrimSuffix(ls[0], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	first := segLines(t, dir, 2)
	h, _ := parse(bytes.TrimSuffix(first[0], []byte("\n")))
	e.Drop = &Drop{Seg: 1, Seq: h.Seq - 1, Last: h.Prev, Bytes: 1}
	ls[0], _ = e.seal()
	setLines(t, dir, v.Last, ls)
	os.Remove(SegmentPath(dir, "a", 1))
	_, err = Verify(dir, "a")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%06d.log line 2: does not link", v.Last)) {
		t.Fatalf("Verify = %v", err)
	}
}

func TestVerifyNoTranscript(t *testing.T) {
	if _, err := Verify(t.TempDir(), "a"); err == nil {
		t.Error("no error for a missing transcript")
	}
}

func b64(b []byte) string {
	j, _ := json.Marshal(b)
	return strings.Trim(string(j), `"`)
}

// Verify on a transcript being written (and dropped at its cap) passes:
// segments that go meanwhile and a newest one just begun are not breaks.
func TestVerifyWhileWriting(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "a", 16<<10, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t0 := time.Now()
		for i := 0; i < 4000; i++ {
			w.Write(t0.Add(time.Duration(i)*Coalesce), []byte(fmt.Sprintf("line %05d\r\n", i)))
		}
		w.Close()
	}()
	checked := 0
	for {
		select {
		case <-done:
			mustVerify(t, dir, "a")
			if checked < 10 {
				t.Logf("only %d verifications while writing", checked)
			}
			return
		default:
		}
		if _, err := Verify(dir, "a"); err != nil && !errors.Is(err, ErrNoTranscript) {
			t.Fatalf("Verify while writing: %v", err)
		}
		checked++
	}
}

// A segment deleted from the middle shows in Read as a notice where the
// text is missing, not as text silently run together.
func TestReadTellsMissingSegment(t *testing.T) {
	dir := writeSegments(t)
	os.Remove(SegmentPath(dir, "a", 3))
	recs := readAll(t, dir, "a", ReadOptions{})
	var before strings.Builder
	for i, r := range recs {
		if r.Dropped != nil {
			if r.Dropped.Seg != 3 || r.Dropped.Bytes != -1 || i == 0 {
				t.Errorf("notice %+v at record %d", r.Dropped, i)
			}
			if !strings.HasPrefix(joined(recs[i+1:]), "line ") {
				t.Errorf("after the notice: %q", joined(recs[i+1:])[:20])
			}
			if strings.Contains(before.String(), "line 0399") {
				t.Error("the notice is not where the text is missing")
			}
			return
		}
		before.Write(r.Data)
	}
	t.Fatal("no notice for the missing segment")
}
