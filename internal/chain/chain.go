// Package chain is the hash chain shared by the audit log and transcripts:
// files of JSON lines in which every line names the hash of the line before
// it ("prev") and ends with its own ("hash"), the SHA-256 of the line as
// encoded without its hash field. Editing, deleting or reordering a line
// breaks the chain at that line or the next.
//
// Without a key, a chain proves integrity against anyone who cannot rewrite
// every line after the one they changed; it does not prove who wrote it.
package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Genesis is the "prev" of a chain's first line.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Seal returns the line that body, a JSON object encoding one entry without
// its hash, becomes with the hash added as its last field, and the hash.
// For a struct whose last field is `json:"hash,omitempty"` the line is
// exactly json.Marshal of the struct with that field set.
func Seal(body []byte) (line []byte, hash string) {
	sum := sha256.Sum256(body)
	hash = hex.EncodeToString(sum[:])
	line = make([]byte, 0, len(body)+len(`,"hash":""`)+len(hash))
	line = append(line, body[:len(body)-1]...)
	line = append(line, `,"hash":"`...)
	line = append(line, hash...)
	return append(line, `"}`...), hash
}

var hashField = []byte(`,"hash":"`)

// Unseal undoes Seal: it returns the body of a sealed line and its hash,
// or an error if the line has no hash field at its end or the hash does not
// match the body (the line was edited).
func Unseal(line []byte) (body []byte, hash string, err error) {
	n := len(hashField) + 64 + len(`"}`)
	if len(line) < n+1 || !bytes.HasPrefix(line[len(line)-n:], hashField) || !bytes.HasSuffix(line, []byte(`"}`)) {
		return nil, "", errors.New("no hash at the end of the line")
	}
	hash = string(line[len(line)-n+len(hashField) : len(line)-2])
	body = append(append([]byte(nil), line[:len(line)-n]...), '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return nil, "", errors.New("hash does not match the line's content (the line was edited)")
	}
	return body, hash, nil
}
