package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The first bytes a client sends through a CONNECT tunnel. When they are a
// TLS handshake, the proxy reads the whole ClientHello (it may span
// records) to learn the server name the client asks for. TLS is never
// terminated: the bytes read here are forwarded unchanged.
const (
	recordHandshake   = 0x16
	handshakeHello    = 0x01
	maxRecord         = 1 << 14
	maxHelloMessage   = 1 << 15 // larger than any real hello, post-quantum key shares included
	extServerName     = 0
	sniHostName       = 0
	alertAccessDenied = 49
)

// hello is what the proxy needs from a ClientHello.
type hello struct {
	sni    string // lower case, validated; "" when the client sent none
	hasSNI bool
}

// readClientHello reads TLS records from r until it holds a whole
// ClientHello, and returns every byte it read. The caller has already seen
// that the first byte is a handshake record.
func readClientHello(r io.Reader) (raw []byte, h hello, err error) {
	var msg []byte
	for {
		var hdr [5]byte
		if k, err := io.ReadFull(r, hdr[:]); err != nil {
			return append(raw, hdr[:k]...), h, fmt.Errorf("reading a TLS record: %w", err)
		}
		raw = append(raw, hdr[:]...)
		n := int(binary.BigEndian.Uint16(hdr[3:5]))
		if hdr[0] != recordHandshake || hdr[1] != 3 || n == 0 || n > maxRecord {
			return raw, h, errors.New("not a TLS handshake record")
		}
		start := len(raw)
		raw = append(raw, make([]byte, n)...)
		if k, err := io.ReadFull(r, raw[start:]); err != nil {
			return raw[:start+k], h, fmt.Errorf("reading a TLS record: %w", err)
		}
		msg = append(msg, raw[start:]...)
		if len(msg) >= 4 {
			if msg[0] != handshakeHello {
				return raw, h, errors.New("the first TLS handshake message is not a ClientHello")
			}
			want := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if want > maxHelloMessage {
				return raw, h, errors.New("the ClientHello is too large")
			}
			if len(msg) >= want {
				if len(msg) > want {
					return raw, h, errors.New("data after the ClientHello in its record")
				}
				h, err = parseClientHello(msg[4:])
				return raw, h, err
			}
		}
	}
}

// parseClientHello reads the server_name extension of a ClientHello body
// (RFC 8446 4.1.2, RFC 6066 3). It refuses malformed hellos, duplicate
// extensions and a server_name list with more than one host name.
func parseClientHello(b []byte) (hello, error) {
	var h hello
	p := parser(b)
	if !p.skip(2+32) || !p.skipVec(1) || !p.skipVec(2) || !p.skipVec(1) {
		return h, errors.New("a malformed ClientHello")
	}
	if p.empty() {
		return h, nil // no extensions
	}
	exts, ok := p.vec(2)
	if !ok || !p.empty() {
		return h, errors.New("malformed ClientHello extensions")
	}
	seen := map[uint16]bool{}
	for !exts.empty() {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec(2)
		if !ok1 || !ok2 {
			return h, errors.New("a malformed ClientHello extension")
		}
		if seen[typ] {
			return h, fmt.Errorf("ClientHello extension %d appears twice", typ)
		}
		seen[typ] = true
		if typ != extServerName {
			continue
		}
		list, ok := data.vec(2)
		if !ok || !data.empty() || list.empty() {
			return h, errors.New("a malformed server_name extension")
		}
		for !list.empty() {
			kind, ok1 := list.u8()
			name, ok2 := list.vec(2)
			if !ok1 || !ok2 {
				return h, errors.New("a malformed server_name entry")
			}
			if kind != sniHostName {
				continue
			}
			if h.hasSNI {
				return h, errors.New("more than one host name in server_name")
			}
			h.hasSNI = true
			n, ok := canonicalName(string(name))
			if !ok {
				return h, fmt.Errorf("the TLS server name %s is not a valid host name", quote(string(name)))
			}
			h.sni = n
		}
	}
	return h, nil
}

// alert is a fatal TLS alert record: what a TLS client can understand
// after the tunnel was opened.
func alert(desc byte) []byte { return []byte{0x15, 3, 1, 0, 2, 2, desc} }

type parser []byte

func (p *parser) empty() bool { return len(*p) == 0 }

func (p *parser) skip(n int) bool {
	if len(*p) < n {
		return false
	}
	*p = (*p)[n:]
	return true
}

func (p *parser) u8() (byte, bool) {
	if len(*p) < 1 {
		return 0, false
	}
	v := (*p)[0]
	*p = (*p)[1:]
	return v, true
}

func (p *parser) u16() (uint16, bool) {
	if len(*p) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(*p)
	*p = (*p)[2:]
	return v, true
}

// vec reads a vector with a lenBytes-byte length prefix.
func (p *parser) vec(lenBytes int) (parser, bool) {
	if len(*p) < lenBytes {
		return nil, false
	}
	n := 0
	for i := 0; i < lenBytes; i++ {
		n = n<<8 | int((*p)[i])
	}
	if len(*p) < lenBytes+n {
		return nil, false
	}
	v := (*p)[lenBytes : lenBytes+n]
	*p = (*p)[lenBytes+n:]
	return v, true
}

func (p *parser) skipVec(lenBytes int) bool {
	_, ok := p.vec(lenBytes)
	return ok
}
