package chain

import (
	"encoding/json"
	"strings"
	"testing"
)

type entry struct {
	Seq  int    `json:"seq"`
	Text string `json:"text"`
	Prev string `json:"prev"`
	Hash string `json:"hash,omitempty"`
}

// Seal gives the line json.Marshal gives with the hash set, so the audit
// log's format is unchanged by sharing it.
func TestSealIsMarshal(t *testing.T) {
	e := entry{Seq: 1, Text: "a \"quoted\" \u2603", Prev: Genesis}
	body, _ := json.Marshal(e)
	line, hash := Seal(body)
	e.Hash = hash
	want, _ := json.Marshal(e)
	if string(line) != string(want) {
		t.Fatalf("Seal = %s\nwant   %s", line, want)
	}
	b, h, err := Unseal(line)
	if err != nil || h != hash || string(b) != string(body) {
		t.Fatalf("Unseal = %s %s %v", b, h, err)
	}
}

func TestUnsealRefuses(t *testing.T) {
	body, _ := json.Marshal(entry{Seq: 1, Text: "x", Prev: Genesis})
	line, _ := Seal(body)
	for name, bad := range map[string]string{
		"edited":   strings.Replace(string(line), `"text":"x"`, `"text":"y"`, 1),
		"no hash":  string(body),
		"short":    `{}`,
		"cut":      string(line[:len(line)-3]),
		"bad hash": strings.Replace(string(line), `"hash":"`, `"hash":"f`, 1)[:len(line)],
	} {
		if _, _, err := Unseal([]byte(bad)); err == nil {
			t.Errorf("%s: Unseal accepted %s", name, bad)
		}
	}
}
