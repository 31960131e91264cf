package audit

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A write cut short (the disk filled, the writer was killed) leaves a last
// line without a newline. The next Open cuts it, records the cut in the
// chain and goes on; Verify passes and counts the repair.
func TestTornTailIsRepairedAndRecorded(t *testing.T) {
	for name, torn := range map[string]string{
		"partial entry": `{"seq":4,"time":"2026-`,
		"zeros":         "\x00\x00\x00\x00\x00\x00",
		"whole file":    "",
	} {
		t.Run(name, func(t *testing.T) {
			n := 3
			if name == "whole file" {
				n, torn = 0, `{"seq":1,"ti`
			}
			path := writeLog(t, n)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(torn)
			f.Close()
			l, err := Open(path)
			if err != nil {
				t.Fatalf("Open of a torn log: %v", err)
			}
			if err := l.Append(Event{Event: "send", Actor: "after"}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			rep, err := VerifyReport(path)
			if err != nil || rep.Entries != n+2 {
				t.Fatalf("VerifyReport = %+v, %v; want %d entries", rep, err, n+2)
			}
			if len(rep.Repairs) != 1 || rep.Repairs[0].Seq != uint64(n+1) {
				t.Fatalf("repairs = %+v, want one at seq %d", rep.Repairs, n+1)
			}
			var evs []Event
			Read(path, func(e Event) error { evs = append(evs, e); return nil })
			rec := evs[n]
			if rec.Event != EventRepaired || !strings.Contains(rec.Detail, "cut a torn last line") || !strings.Contains(rec.Detail, strconv.Itoa(len(torn))+" bytes") {
				t.Errorf("repair entry = %+v, want %s naming %d bytes", rec, EventRepaired, len(torn))
			}
			if evs[n+1].Actor != "after" {
				t.Errorf("entry after the repair = %+v", evs[n+1])
			}
		})
	}
}

// Only the last line is ever cut: a damaged line anywhere before it still
// fails Verify, and a damaged last complete line still makes Open refuse.
func TestMidFileDamageIsStillRefused(t *testing.T) {
	path := writeLog(t, 4)
	ls := lines(t, path)
	ls[1] = bytes.Replace(ls[1], []byte("eng-2"), []byte("eng-3"), 1)
	rewrite(t, path, ls)
	if _, err := Verify(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Verify of mid-file damage = %v, want an error naming line 2", err)
	}
	// Open reads only the tail; it appends after a sound last line, and
	// Verify still reports the damage.
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	// The last complete line damaged, with a torn line after it: refused,
	// and the file is left as it was.
	ls[1] = lines(t, writeLog(t, 4))[1]
	ls[3] = bytes.Replace(ls[3], []byte("eng-2"), []byte("eng-3"), 1)
	rewrite(t, path, append(ls, []byte(`{"seq"`)))
	before, _ := os.ReadFile(path)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Open = %v, want a refusal naming the damaged line", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("Open changed a file it refused")
	}
}
