package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		head    string
		host    string
		port    int
		path    string
		wantErr string
		ip      bool
	}{
		{head: "CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\n", host: "api.anthropic.com", port: 443},
		{head: "CONNECT API.Anthropic.COM.:8443 HTTP/1.1\r\n\r\n", host: "api.anthropic.com", port: 8443},
		{head: "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", host: "2001:db8::1", port: 443, ip: true},
		{head: "CONNECT 10.1.2.3:5432 HTTP/1.0\r\n\r\n", host: "10.1.2.3", port: 5432, ip: true},
		{head: "GET http://pypi.org/simple/?q=1 HTTP/1.1\r\nHost: pypi.org\r\n\r\n", host: "pypi.org", port: 80, path: "/simple/?q=1"},
		{head: "GET HTTP://pypi.org HTTP/1.1\r\n\r\n", host: "pypi.org", port: 80, path: "/"},
		{head: "GET http://pypi.org?x HTTP/1.1\r\n\r\n", host: "pypi.org", port: 80, path: "/?x"},
		{head: "POST http://x.example:8080/a#frag HTTP/1.1\r\n\r\n", host: "x.example", port: 8080, path: "/a"},
		{head: "CONNECT a.com HTTP/1.1\r\n\r\n", wantErr: "no port"},
		{head: "CONNECT a.com:0443 HTTP/1.1\r\n\r\n", wantErr: "port"},
		{head: "CONNECT a.com:+443 HTTP/1.1\r\n\r\n", wantErr: "port"},
		{head: "CONNECT a.com: HTTP/1.1\r\n\r\n", wantErr: "empty port"},
		{head: "CONNECT [fe80::1%eth0]:443 HTTP/1.1\r\n\r\n", wantErr: "IPv6"},
		{head: "CONNECT [10.0.0.1]:443 HTTP/1.1\r\n\r\n", wantErr: "IPv6"},
		{head: "CONNECT 127.1:443 HTTP/1.1\r\n\r\n", wantErr: "valid host"},
		{head: "CONNECT 2130706433:443 HTTP/1.1\r\n\r\n", wantErr: "valid host"},
		{head: "CONNECT a_b.-x.com:443 HTTP/1.1\r\n\r\n", wantErr: "valid host"},
		{head: "CONNECT a b HTTP/1.1\r\n\r\n", wantErr: "request line"},
		{head: "GET http://u:p@a.com/ HTTP/1.1\r\n\r\n", wantErr: "user info"},
		{head: "GET ftp://a.com/ HTTP/1.1\r\n\r\n", wantErr: "absolute http://"},
		{head: "GET https://a.com/ HTTP/1.1\r\n\r\n", wantErr: "CONNECT"},
		{head: "GET http://a.com/ HTTP/1.1\r\nBad Header: x\r\n\r\n", wantErr: "NAME: VALUE"},
		{head: "GET http://a.com/ HTTP/1.1\r\nX: a\x00b\r\n\r\n", wantErr: "control"},
		{head: "GET http://a.com/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", wantErr: "folded"},
		{head: "GET http://a.com/\xff HTTP/1.1\r\n\r\n", wantErr: "non-ASCII"},
		{head: "GET http://a.com/ HTTP/1.1\r\nX: a\n\r\n", wantErr: "CRLF"},
		{head: "GET http://a.com/ HTTP/1.1\r\n\r\nX: b\r\n\r\n", wantErr: "empty line"},
		{head: "GET http://a.com/ HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", 101) + "\r\n", wantErr: "headers"},
	} {
		r, err := parseHead([]byte(tc.head))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %v, want an error saying %q", tc.head, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.head, err)
			continue
		}
		if r.host != tc.host || r.port != tc.port || r.path != tc.path || r.isIP() != tc.ip {
			t.Errorf("%q: host %q port %d path %q ip %v", tc.head, r.host, r.port, r.path, r.isIP())
		}
	}
}

func TestReadHeadBounds(t *testing.T) {
	ok := "GET http://a.com/ HTTP/1.1\r\nX: " + strings.Repeat("a", 8000) + "\r\n\r\nBODY"
	br := bufio.NewReaderSize(strings.NewReader(ok), 8192)
	head, err := readHead(br, 8192)
	if err != nil || !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		t.Fatalf("a head under 8 KiB: %v", err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "BODY" {
		t.Errorf("readHead consumed the body: left %q", rest)
	}
	over := "GET http://a.com/ HTTP/1.1\r\n" + strings.Repeat("X: abcdefgh\r\n", 700) + "\r\n"
	if _, err := readHead(bufio.NewReaderSize(strings.NewReader(over), 8192), 8192); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("a 9 KiB head in short lines: %v", err)
	}
	long := "GET http://a.com/" + strings.Repeat("a", 9000) + " HTTP/1.1\r\n\r\n"
	if _, err := readHead(bufio.NewReaderSize(strings.NewReader(long), 8192), 8192); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("a 9 KiB request line: %v", err)
	}
	if _, err := readHead(bufio.NewReaderSize(strings.NewReader("GET http://a.com/ HT"), 8192), 8192); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a cut head: %v", err)
	}
}

func TestRestricted(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1": true, "127.255.0.9": true, "::1": true, "10.0.0.1": true, "172.16.0.1": true, "172.31.255.255": true,
		"192.168.0.1": true, "169.254.169.254": true, "169.254.1.1": true, "fe80::1": true, "fc00::1": true, "fd12::1": true,
		"100.64.0.1": true, "100.127.255.255": true, "224.0.0.1": true, "ff02::1": true, "0.0.0.0": true, "::": true,
		"255.255.255.255": true, "::ffff:127.0.0.1": true, "::ffff:169.254.169.254": true, "64:ff9b::10.0.0.1": true,
		"2002:0a00:0001::1": true, "::10.0.0.1": true, "fec0::1": true, "0.1.2.3": true,
		"8.8.8.8": false, "1.1.1.1": false, "172.32.0.1": false, "100.128.0.1": false, "2606:4700::1111": false,
		"::ffff:8.8.8.8": false, "64:ff9b::8.8.8.8": false, "2002:0808:0808::1": false, "160.79.104.10": false,
	} {
		if got := restricted(netip.MustParseAddr(a)) != ""; got != want {
			t.Errorf("restricted(%s) = %v, want %v", a, got, want)
		}
	}
}

func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\n",
		"GET http://pypi.org/simple/ HTTP/1.1\r\nHost: pypi.org\r\nUser-Agent: pip\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
		"GET http://a.com:8080?x#y HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 512)
		head, err := readHead(br, 512)
		if err == nil && (len(head) > 512 || !bytes.HasPrefix(data, head)) {
			t.Fatalf("readHead returned %d bytes that are not the input's first", len(head))
		}
		r, err := parseHead(data)
		if err != nil {
			return
		}
		if r.port < 1 || r.port > 65535 {
			t.Fatalf("port %d", r.port)
		}
		if r.isIP() {
			if r.ip.String() != r.host {
				t.Fatalf("IP %s shown as %q", r.ip, r.host)
			}
		} else if n, ok := canonicalName(r.host); !ok || n != r.host {
			t.Fatalf("host %q is not a canonical name", r.host)
		}
		if r.method != "CONNECT" && (r.path == "" || r.path[0] != '/' || strings.ContainsAny(r.path, " \r\n#")) {
			t.Fatalf("path %q", r.path)
		}
		for _, h := range r.headers {
			if strings.ContainsAny(h.name+h.value, "\r\n\x00") {
				t.Fatalf("header %q: %q", h.name, h.value)
			}
		}
	})
}

func TestAuthority(t *testing.T) {
	for head, want := range map[string]string{
		"GET http://a.com/ HTTP/1.0\r\n\r\n":            "a.com",
		"GET http://a.com:8080/ HTTP/1.0\r\n\r\n":       "a.com:8080",
		"GET http://[2001:db8::1]/ HTTP/1.0\r\n\r\n":    "[2001:db8::1]",
		"GET http://[2001:db8::1]:81/ HTTP/1.0\r\n\r\n": "[2001:db8::1]:81",
	} {
		r, err := parseHead([]byte(head))
		if err != nil {
			t.Fatal(err)
		}
		if got := authority(r); got != want {
			t.Errorf("%q: Host %q, want %q", head, got, want)
		}
	}
}
