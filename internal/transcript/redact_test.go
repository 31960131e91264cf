package transcript

import (
	"strings"
	"testing"
)

func TestRedactorSplitChunks(t *testing.T) {
	const secret = "deploy-0123456789abcdef"
	const multi = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----"
	r := NewRedactor(map[string]string{secret: "DEPLOY_KEY", multi: "SSH_KEY", "ab": "SHORT"})
	in := "$ cat /run/secrets/deploy\r\n" + secret + "\r\nand again " + secret + " done\r\n" +
		strings.ReplaceAll(multi, "\n", "\r\n") + "\r\nab\r\n"
	want := "$ cat /run/secrets/deploy\r\n[secret DEPLOY_KEY]\r\nand again [secret DEPLOY_KEY] done\r\n[secret SSH_KEY]\r\nab\r\n"
	// Every way of cutting the output in two, and one byte at a time.
	for cut := 0; cut <= len(in); cut++ {
		got := string(r.Push([]byte(in[:cut]))) + string(r.Push([]byte(in[cut:]))) + string(r.Flush())
		if got != want {
			t.Fatalf("cut at %d:\n got %q\nwant %q", cut, got, want)
		}
	}
	var b strings.Builder
	for i := range len(in) {
		b.Write(r.Push([]byte{in[i]}))
	}
	b.Write(r.Flush())
	if b.String() != want {
		t.Errorf("byte by byte: %q", b.String())
	}
	// A value broken across rows (a history dump, a wrapped line).
	if got := string(r.Push([]byte("x deploy-0123\r\n456789abcdef y"))) + string(r.Flush()); got != "x [secret DEPLOY_KEY] y" {
		t.Errorf("value across rows: %q", got)
	}
	// A prefix of the value that never completes is recorded in the end.
	if got := string(r.Push([]byte("deploy-0123"))) + string(r.Flush()); got != "deploy-0123" {
		t.Errorf("held prefix lost: %q", got)
	}
	// Rotation: the new value is redacted, the old one no more needs to be.
	r.Set(map[string]string{"newvalue-xyz": "DEPLOY_KEY"})
	if got := string(r.Push([]byte("newvalue-xyz"))) + string(r.Flush()); got != "[secret DEPLOY_KEY]" {
		t.Errorf("after Set: %q", got)
	}
}
