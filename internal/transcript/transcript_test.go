package transcript

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecode(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	data := []byte("hello\r\n\x1b[31mred\x1b[0m \xff\xfe \"quoted\" \\ \x00")
	line := Encode(Record{Time: at, Data: data})
	want := `{"t":"2025-06-01T11:00:00.123456789Z","b":"` // UTC, nanoseconds
	if !bytes.HasPrefix(line, []byte(want)) || !bytes.HasSuffix(line, []byte("\"}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("Encode = %q", line)
	}
	rec, err := Decode(line)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Time.Equal(at) || !bytes.Equal(rec.Data, data) {
		t.Errorf("round trip: %v %q", rec.Time, rec.Data)
	}
	for _, bad := range []string{``, `{`, `{"t":"x","b":""}`, `{"t":"2025-06-01T11:00:00Z"}`, `{"b":"aGk="}`, `{"t":"2025-06-01T11:00:00Z","b":"!!"}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10MiB": 10 << 20, "512KiB": 512 << 10, "1GB": 1e9, "4096": 4096, "8 KiB": 8 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10mb", "-1", "1.5MiB", "100", "99999999999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	t.Setenv(EnvMax, "")
	if n, err := MaxFromEnv(); err != nil || n != DefaultMax {
		t.Errorf("MaxFromEnv unset = %d, %v", n, err)
	}
	t.Setenv(EnvMax, "64KiB")
	if n, err := MaxFromEnv(); err != nil || n != 64<<10 {
		t.Errorf("MaxFromEnv = %d, %v", n, err)
	}
	t.Setenv(EnvMax, "lots")
	if _, err := MaxFromEnv(); err == nil {
		t.Error("MaxFromEnv accepted lots")
	}
}

func readAll(t *testing.T, dir, agent string, o ReadOptions) []Record {
	t.Helper()
	var out []Record
	err := Read(context.Background(), dir, agent, o, func(r Record) error {
		out = append(out, Record{Time: r.Time, Data: append([]byte(nil), r.Data...)})
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

func TestWriteRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "transcripts")
	w, err := Open(dir, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	w.Write(t0, []byte("old\r\n"))
	w.Write(t0.Add(30*time.Minute), []byte("middle\r\n"))
	w.Write(t0.Add(59*time.Minute), []byte("new\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, Path(dir, "alice"): 0o600} {
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

	// A torn last line (a writer killed mid-write) is skipped, and the next
	// writer starts on a new line.
	f, _ := os.OpenFile(Path(dir, "alice"), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"t":"2025-06-01T11:00:00Z","b":"aGk`)
	f.Close()
	w, err = Open(dir, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := w.Modified(); time.Since(m) > time.Minute {
		t.Errorf("Modified() = %v on a transcript just written", m)
	}
	w.Write(time.Now(), []byte("again\r\n"))
	w.Close()
	if got := joined(readAll(t, dir, "alice", ReadOptions{})); got != "old\r\nmiddle\r\nnew\r\nagain\r\n" {
		t.Errorf("after a torn line: %q", got)
	}
}

func dirSize(t *testing.T, dir string) (int64, []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
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

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	const capBytes = 8 << 10
	w, err := Open(dir, "a", capBytes)
	if err != nil {
		t.Fatal(err)
	}
	if m := w.Modified(); !m.IsZero() {
		t.Errorf("Modified() = %v on a new transcript", m)
	}
	var all strings.Builder
	for i := 0; i < 2000; i++ {
		line := fmt.Sprintf("line %04d\r\n", i)
		all.WriteString(line)
		if err := w.Write(time.Now(), []byte(line)); err != nil {
			t.Fatal(err)
		}
		if n, names := dirSize(t, dir); n > capBytes || len(names) > 2 {
			t.Fatalf("after %d lines: %d bytes in %v, cap %d", i, n, names, capBytes)
		}
	}
	// One write far bigger than a file is split into records that fit.
	big := bytes.Repeat([]byte("x"), 20<<10)
	if err := w.Write(time.Now(), append(big, "end\r\n"...)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	n, names := dirSize(t, dir)
	if n > capBytes || len(names) != 2 {
		t.Fatalf("%d bytes in %v, cap %d", n, names, capBytes)
	}
	got := joined(readAll(t, dir, "a", ReadOptions{}))
	if !strings.HasSuffix(got, "xxxxend\r\n") || len(got) < capBytes/4 {
		t.Errorf("kept %d bytes ending %q", len(got), got[max(0, len(got)-20):])
	}
	if !strings.HasSuffix(all.String()+string(big)+"end\r\n", got) {
		t.Error("what is kept is not the tail of what was written")
	}
	if _, err := Open(dir, "a", 100); err == nil {
		t.Error("a cap below MinMax was accepted")
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "a", 8<<10)
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
	// Written slowly enough that the follower keeps up across rotations.
	for i := 0; i < 300; i++ {
		w.Write(time.Now(), []byte(fmt.Sprintf("line %04d|", i)))
		if i%20 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	var b strings.Builder
	for !strings.Contains(b.String(), "line 0299|") {
		select {
		case s := <-got:
			b.WriteString(s)
		case <-ctx.Done():
			t.Fatalf("follow stopped at %q", b.String()[max(0, b.Len()-40):])
		}
	}
	for i := 0; i < 300; i++ {
		if !strings.Contains(b.String(), fmt.Sprintf("line %04d|", i)) {
			t.Errorf("follow missed line %d", i)
		}
	}
	if n, _ := dirSize(t, dir); n > 8<<10 {
		t.Errorf("%d bytes on disk", n)
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
	w, err := Open(dir, "a", 0)
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
