package transcript

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func readAll(t *testing.T, dir, agent string, o ReadOptions) []Record {
	t.Helper()
	var out []Record
	err := Read(context.Background(), dir, agent, o, func(r Record) error {
		out = append(out, Record{Time: r.Time, Data: append([]byte(nil), r.Data...), Dropped: r.Dropped})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func joined(rs []Record) string {
	var b strings.Builder
	for _, r := range rs {
		b.Write(r.Data)
	}
	return b.String()
}

// dirSize is the bytes in, and names of, the agent's segments.
func dirSize(t *testing.T, dir, agent string) (int64, []string) {
	t.Helper()
	ents, err := os.ReadDir(Dir(dir, agent))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var names []string
	for _, e := range ents {
		fi, _ := e.Info()
		n += fi.Size()
		names = append(names, e.Name())
	}
	return n, names
}

func mustVerify(t *testing.T, dir, agent string) Verified {
	t.Helper()
	v, err := Verify(dir, agent)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir() + "/transcripts"
	w, err := Open(dir, "alice", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := w.Modified(); !m.IsZero() {
		t.Errorf("Modified() = %v on a new transcript", m)
	}
	t0 := time.Now().Add(-time.Hour)
	w.Write(t0, []byte("old\r\n"))
	w.Note(t0, EventStream, "container 0123456789ab")
	w.Write(t0.Add(30*time.Minute), []byte("middle\r\n"))
	w.Write(t0.Add(59*time.Minute), []byte("new\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, Dir(dir, "alice"): 0o700 | os.ModeDir, SegmentPath(dir, "alice", 1): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, mode)
		}
	}
	if got := joined(readAll(t, dir, "alice", ReadOptions{})); got != "old\r\nmiddle\r\nnew\r\n" {
		t.Errorf("all: %q", got)
	}
	if got := joined(readAll(t, dir, "alice", ReadOptions{Since: t0.Add(20 * time.Minute)})); got != "middle\r\nnew\r\n" {
		t.Errorf("since: %q", got)
	}
	if err := Read(context.Background(), dir, "bob", ReadOptions{}, func(Record) error { return nil }); err == nil {
		t.Error("no error for an agent without a transcript")
	}
	if v := mustVerify(t, dir, "alice"); v.Records != 5 || v.Segments != 1 || v.Streams != 1 || v.Bytes != int64(len("old\r\nmiddle\r\nnew\r\n")) || v.Dropped != nil {
		t.Errorf("Verify = %+v", v)
	}

	// A torn last line (a recorder killed mid-write) is cut off when the
	// next writer opens it, and the chain goes on from the record before.
	f, _ := os.OpenFile(SegmentPath(dir, "alice", 1), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":6,"t":"2025-06-01T11:00:00Z","b":"aGk`)
	f.Close()
	if v := mustVerify(t, dir, "alice"); !v.Partial {
		t.Errorf("a torn last line is not reported: %+v", v)
	}
	w, err = Open(dir, "alice", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := w.Modified(); !m.Equal(t0.Add(59 * time.Minute)) {
		t.Errorf("Modified() = %v, want the last output's time", m)
	}
	w.Write(time.Now(), []byte("again\r\n"))
	w.Close()
	if got := joined(readAll(t, dir, "alice", ReadOptions{})); got != "old\r\nmiddle\r\nnew\r\nagain\r\n" {
		t.Errorf("after a torn line: %q", got)
	}
	if v := mustVerify(t, dir, "alice"); v.Records != 6 || v.Partial {
		t.Errorf("after a torn line: Verify = %+v", v)
	}
}

// Printing past a segment's cap starts another segment: the earliest text
// is still there as long as everything fits within the total cap.
func TestSegmentsKeepEarlierText(t *testing.T) {
	dir := t.TempDir()
	const total, seg = 256 << 10, 4 << 10
	w, err := Open(dir, "a", total, seg)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for i := 0; i < 3000; i++ {
		line := fmt.Sprintf("line %04d\r\n", i)
		all.WriteString(line)
		if err := w.Write(time.Now(), []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	// One write far bigger than a segment is split into records that fit.
	big := bytes.Repeat([]byte("x"), 20<<10)
	w.Write(time.Now(), append(big, "end\r\n"...))
	all.Write(append(big, "end\r\n"...))
	w.Close()
	n, names := dirSize(t, dir, "a")
	if len(names) < 10 || n > total {
		t.Fatalf("%d bytes in %v: want many segments within %d", n, names, total)
	}
	for _, name := range names {
		if fi, _ := os.Stat(Dir(dir, "a") + "/" + name); fi.Size() > seg {
			t.Errorf("%s is %d bytes, over the segment cap %d", name, fi.Size(), seg)
		}
	}
	if got := joined(readAll(t, dir, "a", ReadOptions{})); got != all.String() {
		t.Errorf("read back %d bytes, wrote %d; starts %q", len(got), all.Len(), got[:min(len(got), 30)])
	}
	if v := mustVerify(t, dir, "a"); v.Segments != len(names) || v.Dropped != nil || v.Bytes != int64(all.Len()) {
		t.Errorf("Verify = %+v", v)
	}
}

// Past the total cap the oldest segments go, and the drop is recorded:
// Read starts with a notice of how much, and Verify accounts for every
// byte written.
func TestTotalCapDropsAndRecords(t *testing.T) {
	dir := t.TempDir()
	const total = 16 << 10
	w, err := Open(dir, "a", total, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	var all strings.Builder
	for i := 0; i < 5000; i++ {
		line := fmt.Sprintf("line %04d\r\n", i)
		all.WriteString(line)
		if err := w.Write(t0.Add(time.Duration(i)*time.Millisecond), []byte(line)); err != nil {
			t.Fatal(err)
		}
		if n, names := dirSize(t, dir, "a"); n > total {
			t.Fatalf("after %d lines: %d bytes in %v, cap %d", i, n, names, total)
		}
	}
	w.Close()
	recs := readAll(t, dir, "a", ReadOptions{})
	d := recs[0].Dropped
	if d == nil || d.Bytes <= 0 || !d.From.Equal(t0) || !d.To.After(d.From) {
		t.Fatalf("the first record is not the drop notice: %+v", recs[0])
	}
	got := joined(recs)
	if !strings.HasSuffix(all.String(), got) || !strings.HasSuffix(got, "line 4999\r\n") || len(got) < total/4 {
		t.Errorf("kept %d bytes, not the tail of what was written", len(got))
	}
	if int(d.Bytes)+len(got) != all.Len() {
		t.Errorf("dropped %d + kept %d != written %d", d.Bytes, len(got), all.Len())
	}
	v := mustVerify(t, dir, "a")
	if v.Dropped == nil || *v.Dropped != *d || v.First != d.Seg+1 || v.Bytes != int64(len(got)) {
		t.Errorf("Verify = %+v, drop %+v", v, d)
	}
	if _, err := Open(dir, "b", 100, 0); err == nil {
		t.Error("a cap below MinMax was accepted")
	}
}

// A recorder killed after writing a header that drops segments, before
// deleting them, leaves them behind: the next Open deletes them, and
// neither Read nor Verify counts them meanwhile.
func TestDroppedLeftoversIgnored(t *testing.T) {
	dir := t.TempDir()
	w, _ := Open(dir, "a", 16<<10, 0)
	for i := 0; i < 2000; i++ {
		w.Write(time.Now(), []byte(fmt.Sprintf("line %04d\r\n", i)))
	}
	w.Close()
	v := mustVerify(t, dir, "a")
	old := SegmentPath(dir, "a", v.Dropped.Seg)
	if err := os.WriteFile(old, []byte("leftover\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir, "a")
	if got := joined(readAll(t, dir, "a", ReadOptions{})); strings.Contains(got, "leftover") {
		t.Error("read a dropped segment")
	}
	w, err := Open(dir, "a", 16<<10, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("dropped segment %s still there: %v", old, err)
	}
}

func TestOneWriterAtATime(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "a", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w2, err := Open(dir, "a", 0, 0); err == nil {
		w2.Close()
		t.Fatal("a second writer opened the same transcript")
	}
	// A copy of the lock's descriptor (a child between fork and exec has
	// one) does not keep the transcript locked after Close.
	dup, err := syscall.Dup(int(w.lock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(dup)
	w.Close()
	w2, err := Open(dir, "a", 0, 0)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	w2.Close()
}

func TestFollowAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "a", 1<<20, MinSegment)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan string, 10000)
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, dir, "a", ReadOptions{Follow: true, Poll: 5 * time.Millisecond}, func(r Record) error {
			got <- string(r.Data)
			return nil
		})
	}()
	// Written slowly enough that the follower keeps up across segments.
	for i := 0; i < 600; i++ {
		w.Write(time.Now(), []byte(fmt.Sprintf("line %04d|", i)))
		if i%20 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	var b strings.Builder
	for !strings.Contains(b.String(), "line 0599|") {
		select {
		case s := <-got:
			b.WriteString(s)
		case <-ctx.Done():
			t.Fatalf("follow stopped at %q", b.String()[max(0, b.Len()-40):])
		}
	}
	for i := 0; i < 600; i++ {
		if !strings.Contains(b.String(), fmt.Sprintf("line %04d|", i)) {
			t.Errorf("follow missed line %d", i)
		}
	}
	if _, names := dirSize(t, dir, "a"); len(names) < 3 {
		t.Errorf("only %v: the test did not cross segments", names)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Read: %v", err)
	}
}

// A follow started before the transcript exists waits for it, and Stop ends it.
func TestFollowWaitsAndStops(t *testing.T) {
	dir := t.TempDir()
	stop := make(chan struct{})
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- Read(context.Background(), dir, "a", ReadOptions{Follow: true, Poll: 5 * time.Millisecond,
			Stop: func() bool {
				select {
				case <-stop:
					return true
				default:
					return false
				}
			}}, func(r Record) error {
			got <- string(r.Data)
			return nil
		})
	}()
	time.Sleep(30 * time.Millisecond)
	w, err := Open(dir, "a", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(time.Now(), []byte("hello"))
	w.Close()
	select {
	case s := <-got:
		if s != "hello" {
			t.Errorf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not see the new transcript")
	}
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end the follow")
	}
}
