package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// captureHello returns the bytes crypto/tls sends first for serverName.
func captureHello(t testing.TB, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""})
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Handshake()
		a.Close()
	}()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	raw, _, err := readClientHello(b)
	b.Close()
	if err != nil {
		t.Fatalf("reading crypto/tls's ClientHello: %v", err)
	}
	return raw
}

func TestReadClientHello(t *testing.T) {
	raw := captureHello(t, "API.example.com")
	got, h, err := readClientHello(bytes.NewReader(append(raw, "after"...)))
	if err != nil || !h.hasSNI || h.sni != "api.example.com" || !bytes.Equal(got, raw) {
		t.Fatalf("sni %q (%v) err %v, read %d of %d bytes", h.sni, h.hasSNI, err, len(got), len(raw))
	}
	if _, h, err := readClientHello(bytes.NewReader(captureHello(t, ""))); err != nil || h.hasSNI {
		t.Fatalf("no SNI: %+v %v", h, err)
	}
	// The same hello split over two records is read whole.
	body := raw[5:]
	split := append([]byte{0x16, 3, 1, 0, 10}, body[:10]...)
	n := len(body) - 10
	split = append(split, 0x16, 3, 1, byte(n>>8), byte(n))
	split = append(split, body[10:]...)
	if got, h, err := readClientHello(bytes.NewReader(split)); err != nil || h.sni != "api.example.com" || !bytes.Equal(got, split) {
		t.Fatalf("a hello over two records: %q %v", h.sni, err)
	}
	for name, bad := range map[string][]byte{
		"not handshake":   append([]byte{0x17}, raw[1:]...),
		"cut":             raw[:len(raw)-3],
		"not a hello":     append(append([]byte{}, raw[:5]...), append([]byte{2}, raw[6:]...)...),
		"zero record":     {0x16, 3, 1, 0, 0},
		"huge record":     {0x16, 3, 1, 0x50, 0},
		"huge hello":      {0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff},
		"trailing in rec": append(append([]byte{0x16, 3, 1, byte((len(body) + 1) >> 8), byte(len(body) + 1)}, body...), 0),
	} {
		if _, _, err := readClientHello(bytes.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A server name that is not a host name is refused, and quoted.
	evil := bytes.Replace(raw, []byte("API.example.com"), []byte("API.e\x1bample.com"), 1)
	if _, _, err := readClientHello(bytes.NewReader(evil)); err == nil || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("an escape in the SNI: %v", err)
	}
}

func FuzzClientHello(f *testing.F) {
	f.Add(captureHello(f, "api.anthropic.com"))
	f.Add(captureHello(f, ""))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, h, err := readClientHello(bytes.NewReader(data))
		if !bytes.HasPrefix(data, raw) {
			t.Fatal("returned bytes that are not the input's first")
		}
		if err == nil && h.hasSNI {
			if n, ok := canonicalName(h.sni); !ok || n != h.sni {
				t.Fatalf("SNI %q is not a canonical name", h.sni)
			}
		}
		if _, err := io.Copy(io.Discard, bytes.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
	})
}
