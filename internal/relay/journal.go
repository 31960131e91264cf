package relay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The journal is what makes an "ok" durable (invariant 6): every accepted
// message and self-scheduled check-in is appended and synced before the
// sender hears "ok", and New rebuilds the queues from it. It is a file of JSON
// lines, one record each; see PROTOCOL.md for the format.

// message is one message, as queued in memory and recorded in the journal.
type message struct {
	ID       uint64    `json:"id"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Kind     string    `json:"kind"`
	Body     string    `json:"body"`
	Time     time.Time `json:"time"`
	ClientID string    `json:"cid,omitempty"`   // the sender's id for dedupe
	Sched    uint64    `json:"sched,omitempty"` // the self-scheduled check-in this fired
	Decl     int       `json:"decl,omitempty"`  // 1 + index of the declared check-in this fired
	// Delivered is when the recipient acknowledged it (zero while queued).
	Delivered time.Time `json:"dt,omitzero"`
}

func (m *message) delivery() Delivery {
	return Delivery{ID: m.ID, From: m.From, Kind: m.Kind, Body: m.Body, Time: m.Time}
}

// schedule is a self-scheduled check-in that has not fired yet.
type schedule struct {
	ID   uint64    `json:"id"`
	To   string    `json:"to"`
	Body string    `json:"body"`
	Due  time.Time `json:"due"`
}

// seenID remembers that From already sent ClientID, as message ID.
type seenID struct {
	From     string `json:"from"`
	ClientID string `json:"cid"`
	ID       uint64 `json:"id"`
}

// record is one journal line. Op says which field is set:
//
//	hdr   Next: the next id to assign (first line of every journal)
//	msg   Msg: accepted, pending delivery (if Msg.Sched != 0, that schedule is consumed)
//	ack   ID: the recipient acknowledged message ID (at Time, if set)
//	sched Sched: a self-scheduled check-in
//	hist  Msg: delivered earlier, kept for inbox (written by compaction)
//	seen  Seen: a client_id whose message is no longer pending (written by compaction)
//	audited   everything before it is in the audit log too (written after each commit)
type record struct {
	Op    string    `json:"op"`
	Next  uint64    `json:"next,omitempty"`
	ID    uint64    `json:"id,omitempty"`
	Time  time.Time `json:"t,omitzero"` // ack: when
	Msg   *message  `json:"msg,omitempty"`
	Sched *schedule `json:"sched,omitempty"`
	Seen  *seenID   `json:"seen,omitempty"`
}

func (r record) valid() bool {
	switch r.Op {
	case "hdr":
		return r.Next > 0
	case "msg", "hist":
		return r.Msg != nil && r.Msg.ID > 0
	case "ack":
		return r.ID > 0
	case "sched":
		return r.Sched != nil && r.Sched.ID > 0
	case "seen":
		return r.Seen != nil && r.Seen.ID > 0
	case "audited":
		return true
	}
	return false
}

type journal struct {
	dir, path string
	lock      *os.File // flock held while this relay owns dir
	f         *os.File // append-only; nil until the first rewrite
	size      int64    // bytes in f
	base      int64    // size right after the last rewrite
	broken    error    // set once an append may have left the file inconsistent
	buf       bytes.Buffer
	tmp       *os.File // a rewrite between startRewrite and finishRewrite
	tmpSize   int64
	// The two file operations a disk can fail, replaceable by tests.
	writeFile func(f *os.File, b []byte) (int, error)
	syncFile  func(f *os.File) error
}

// openJournal takes dir for this relay (creating it 0700) and reads the
// journal in it. An incomplete or unreadable tail is a record whose write was
// cut short by a crash, so its sender never got "ok": it is dropped and the
// number of bytes dropped returned. Damage followed by intact records is
// corruption and an error.
func openJournal(dir string) (*journal, []record, int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, 0, fmt.Errorf("create relay state dir: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("relay state dir: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, 0, fmt.Errorf("relay state dir %s is not a directory", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, 0, fmt.Errorf("relay state dir %s has mode %04o, so others could read queued messages: run chmod 700 on it", dir, st.Mode().Perm())
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("relay state dir lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, 0, fmt.Errorf("relay state dir %s is in use by another relay (%v): stop that relay first", dir, err)
	}
	j := &journal{dir: dir, path: filepath.Join(dir, "journal"), lock: lock,
		writeFile: (*os.File).Write, syncFile: (*os.File).Sync}
	recs, dropped, err := readJournal(j.path)
	if err != nil {
		lock.Close()
		return nil, nil, 0, err
	}
	return j, recs, dropped, nil
}

func readJournal(path string) ([]record, int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read relay journal: %w", err)
	}
	var recs []record
	good, lineNo := 0, 0 // good: bytes up to the end of the last intact record
	var firstBad error
	for rest := data; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // incomplete last line
		}
		line := rest[:i]
		rest = rest[i+1:]
		lineNo++
		var rec record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		err := dec.Decode(&rec)
		if err == nil && !rec.valid() {
			err = errors.New("not a complete record")
		}
		if err != nil {
			if firstBad == nil {
				firstBad = fmt.Errorf("line %d (%v)", lineNo, err)
			}
			continue
		}
		if firstBad != nil {
			return nil, 0, fmt.Errorf("relay journal %s is corrupt at %v, with intact records after it: it was changed by something other than the relay; move it aside to start empty (its pending messages are then lost)", path, firstBad)
		}
		recs = append(recs, rec)
		good = len(data) - len(rest)
	}
	return recs, len(data) - good, nil
}

// write appends recs at the end of the journal, not yet synced (see sync). A
// failed write is cut back off so that the next record starts on a fresh
// line.
func (j *journal) write(recs []record) error {
	if j.broken != nil {
		return j.broken
	}
	j.buf.Reset()
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode journal record: %w", err)
		}
		j.buf.Write(b)
		j.buf.WriteByte('\n')
	}
	n, err := j.writeFile(j.f, j.buf.Bytes())
	if j.buf.Cap() > 1<<20 {
		j.buf = bytes.Buffer{} // one huge batch should not stay in memory
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("relay journal %s: write failed (%v) and could not be undone (%v): restart the relay once the disk is fixed", j.path, err, terr)
			return j.broken
		}
		return fmt.Errorf("relay journal %s: write failed: %w (check free space on the state dir)", j.path, err)
	}
	j.size += int64(n)
	return nil
}

// sync makes everything written so far durable. After a failed fsync the
// kernel may have dropped the data: nothing written since can be trusted to
// be on disk, so the journal is broken.
func (j *journal) sync() error {
	if j.broken != nil {
		return j.broken
	}
	if err := j.syncFile(j.f); err != nil {
		j.broken = fmt.Errorf("relay journal %s: sync failed (%v): restart the relay once the disk is fixed", j.path, err)
		return j.broken
	}
	return nil
}

// undo cuts the journal back to size bytes (the records after it were not
// recorded in the audit log, so they must not count), and syncs.
func (j *journal) undo(size int64) error {
	if j.broken != nil {
		return j.broken
	}
	if err := j.f.Truncate(size); err != nil {
		j.broken = fmt.Errorf("relay journal %s: could not take back records the audit log lacks (%v): restart the relay once the audit log is fixed", j.path, err)
		return j.broken
	}
	j.size = size
	if err := j.sync(); err != nil {
		return err
	}
	return errUndone
}

// drop cuts the journal back to size bytes after a failed sync, when
// it is broken already (undo would refuse): best effort, so the records a
// refused commit wrote are not on disk for the next start to deliver.
func (j *journal) drop(size int64) {
	if j.f.Truncate(size) == nil {
		j.size = size
		_ = j.syncFile(j.f)
	}
}

// errUndone: the records were taken back out of the journal.
var errUndone = errors.New("not stored: the audit log could not be written")

// rewrite replaces the journal with recs atomically: a temp file, synced, then
// renamed over the old one, then the directory synced.
func (j *journal) rewrite(recs iter.Seq[record]) error {
	if err := j.startRewrite(recs); err != nil {
		return err
	}
	return j.finishRewrite()
}

// startRewrite writes recs to the temp file, not yet synced. The records are
// streamed, never held in memory all at once (a snapshot of 50 busy agents
// is megabytes), so the state they come from must hold still until it
// returns; finishRewrite, the slow part, needs no state. No record may be
// appended in between.
func (j *journal) startRewrite(recs iter.Seq[record]) error {
	if j.broken != nil {
		return j.broken
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("compact relay journal: %w", err)
	}
	w := &countingWriter{w: bufio.NewWriterSize(f, 64<<10)}
	enc := json.NewEncoder(w) // the same bytes as Marshal and a newline, without a buffer per record
	for r := range recs {
		if err = enc.Encode(r); err != nil {
			break
		}
	}
	if err == nil {
		err = w.w.Flush()
	}
	size := w.n
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact relay journal in %s: %w (check free space)", j.dir, err)
	}
	j.tmp, j.tmpSize = f, size
	return nil
}

func (j *journal) finishRewrite() error {
	f, tmp := j.tmp, j.path+".tmp"
	j.tmp = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact relay journal in %s: %w (check free space)", j.dir, err)
	}
	nf, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		j.broken = fmt.Errorf("reopen relay journal after compaction: %w", err)
		return j.broken
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size, j.base = nf, j.tmpSize, j.tmpSize
	return nil
}

type countingWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// close releases the journal and the state dir. The lock is released
// explicitly before the close: a flock belongs to the open file, which a
// process this one is forking at that moment holds too until its exec
// closes it, and a relay started next (a restart) must find it free.
func (j *journal) close() {
	if j.f != nil {
		j.f.Close()
	}
	_ = syscall.Flock(int(j.lock.Fd()), syscall.LOCK_UN)
	j.lock.Close()
}
