package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"syscall"
	"time"
)

// EventRepaired is the entry a writer adds when it cut a torn last line.
const EventRepaired = "audit_repaired"

// repair handles a file that ends without a newline: a write that did not
// finish (the disk filled, or the writer died mid-write). Only that last,
// partial line is cut, and only when the line before it is a sound entry:
// damage anywhere else is refused as before. The cut is recorded in the
// chain by an EventRepaired entry written over the torn bytes, so the file
// is never without either the torn line or the record of its removal.
// Call with the flock held.
func (l *Log) repair(size int64) error {
	// The torn line and the whole one before it, each at most maxLine.
	tail := make([]byte, min(size, 2*(maxLine+1)))
	if _, err := l.f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return fmt.Errorf("read audit log %s: %w", l.path, err)
	}
	whole := int64(len(tail)) == size // tail starts at the file's start
	i := bytes.LastIndexByte(tail, '\n')
	if len(tail)-i-1 > maxLine+1 {
		return fmt.Errorf("audit log %s: last line is longer than %d bytes, so it was not written by this package: move the file aside", l.path, maxLine)
	}
	torn := tail[i+1:]
	good := size - int64(len(torn))
	seq, prev := uint64(0), genesis
	if i >= 0 {
		last := tail[:i]
		if j := bytes.LastIndexByte(last, '\n'); j >= 0 {
			last = last[j+1:]
		} else if !whole {
			return fmt.Errorf("audit log %s: the line before the torn tail is longer than %d bytes, so it was not written by this package: move the file aside", l.path, maxLine)
		}
		e, err := parseLine(last)
		if err != nil {
			return fmt.Errorf("audit log %s: ends in an incomplete line, and the line before it is damaged too (%v), so this is not a torn write: check it with runner audit --verify, then move the file aside", l.path, err)
		}
		seq, prev = e.Seq, e.Hash
	} else if !whole {
		return fmt.Errorf("audit log %s: last line is longer than %d bytes, so it was not written by this package: move the file aside", l.path, maxLine)
	}
	sum := sha256.Sum256(torn)
	ent := entry{
		Seq:    seq + 1,
		Time:   time.Now().UTC().Format(time.RFC3339Nano),
		Event:  EventRepaired,
		Actor:  "runner",
		Detail: fmt.Sprintf("cut a torn last line: %d bytes after seq %d (a write that did not finish: a full disk or a crash), sha256 %s", len(torn), seq, hex.EncodeToString(sum[:])),
		Prev:   prev,
	}
	line, err := ent.seal()
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if err := l.overwrite(good, line); err != nil {
		return fmt.Errorf("audit log %s ends in a torn line (%d bytes) and cannot be repaired yet: %v: free space on its disk; the next start repairs it", l.path, len(torn), err)
	}
	l.size, l.seq, l.prev = good+int64(len(line)), ent.Seq, ent.Hash
	return nil
}

// overwrite writes b at off and ends the file after it, then syncs. The file
// is opened for appending, where pwrite appends on Linux, so O_APPEND is
// cleared for the while. If the write fails the file still ends without a
// newline (the torn bytes, or part of b), so the next writer repairs again.
func (l *Log) overwrite(off int64, b []byte) error {
	fd := int(l.f.Fd())
	flags, err := fcntl(fd, syscall.F_GETFL, 0)
	if err != nil {
		return err
	}
	if _, err := fcntl(fd, syscall.F_SETFL, flags&^syscall.O_APPEND); err != nil {
		return err
	}
	defer fcntl(fd, syscall.F_SETFL, flags)
	for len(b) > 0 {
		n, err := syscall.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	if err := syscall.Ftruncate(fd, off); err != nil {
		return err
	}
	return syscall.Fsync(fd)
}

func fcntl(fd, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
