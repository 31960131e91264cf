package rules

import (
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		in     string
		kind   Kind
		host   string
		prefix string
		port   int
	}{
		{"api.anthropic.com", KindName, "api.anthropic.com", "", 0},
		{"API.Anthropic.COM.", KindName, "api.anthropic.com", "", 0},
		{"registry.npmjs.org:443", KindName, "registry.npmjs.org", "", 443},
		{"localhost:8080", KindName, "localhost", "", 8080},
		{"xn--bcher-kva.de", KindName, "xn--bcher-kva.de", "", 0},
		{"_acme.example.com", KindName, "_acme.example.com", "", 0},
		{"*.githubusercontent.com", KindWildcard, "githubusercontent.com", "", 0},
		{"*.Example.org.:8443", KindWildcard, "example.org", "", 8443},
		{"192.0.2.7", KindIP, "", "192.0.2.7/32", 0},
		{"127.0.0.2:8080", KindIP, "", "127.0.0.2/32", 8080},
		{"2001:db8::7", KindIP, "", "2001:db8::7/128", 0},
		{"[2001:db8::7]", KindIP, "", "2001:db8::7/128", 0},
		{"[2001:db8::7]:8080", KindIP, "", "2001:db8::7/128", 8080},
		{"::ffff:10.0.0.1", KindIP, "", "10.0.0.1/32", 0},
		{"10.1.2.0/24", KindCIDR, "", "10.1.2.0/24", 0},
		{"10.1.2.0/24:5432", KindCIDR, "", "10.1.2.0/24", 5432},
		{"10.1.2.3/32", KindIP, "", "10.1.2.3/32", 0},
		{"fd00::/8", KindCIDR, "", "fd00::/8", 0},
		{"[fd00::/8]:5432", KindCIDR, "", "fd00::/8", 5432},
		{"host:65535", KindName, "host", "", 65535},
		{"host:1", KindName, "host", "", 1},
	} {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		var prefix string
		if e.Prefix.IsValid() {
			prefix = e.Prefix.String()
		}
		if e.Kind != tc.kind || e.Host != tc.host || prefix != tc.prefix || e.Port != tc.port || e.Raw != tc.in {
			t.Errorf("Parse(%q) = %+v, want kind %d host %q prefix %q port %d", tc.in, e, tc.kind, tc.host, tc.prefix, tc.port)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "cannot be empty"},
		{"*", "* alone"},
		{"*:443", "* alone"},
		{"*.", "empty"},
		{"a.*.example.com", "whole first label"},
		{"*example.com", "whole first label"},
		{"foo*.example.com", "whole first label"},
		{"**.example.com", "whole first label"},
		{"*.*.example.com", "whole first label"},
		{"example.*", "whole first label"},
		{"host:0", "out of range"},
		{"host:65536", "out of range"},
		{"host:99999999999999999999", "out of range"},
		{"host:", "followed by a port"},
		{"host:http", "not a number"},
		{"host:+80", "not a number"},
		{"host:-1", "not a number"},
		{"host:080", "leading zeros"},
		{"host:80:81", "not an IP address"},
		{"10.1.2.0/33", "prefix length"},
		{"10.1.2.0/", "prefix length"},
		{"10.1.2.0/x", "prefix length"},
		{"10.1.2.0/024", "prefix length"},
		{"10.1.2.3/24", "did you mean 10.1.2.0/24"},
		{"0.0.0.0/0", "/0"},
		{"::/0", "/0"},
		{"10.1.2/24", "not an IP address"},
		{"fd00::/8:5432", "in brackets"},
		{"fe80::1%eth0", "zone"},
		{"[::1", "needs its ]"},
		{"[::1]x", "only :port"},
		{"[10.0.0.1]:80", "only for IPv6"},
		{"[::1]:0", "out of range"},
		{"256.1.1.1", "not an IP address"},
		{"127.1", "not an IP address"},
		{"2130706433", "not an IP address"},
		{"0x7f.0.0.1", "not an IP address"},
		{"example.123", "not an IP address"},
		{" example.com", "whitespace"},
		{"example.com ", "whitespace"},
		{"a b", "whitespace"},
		{"a\tb", "whitespace"},
		{"a\nb", "whitespace"},
		{"a\x00b", "control"},
		{"https://example.com", `"example.com"`},
		{"http://u:p@example.com:8080/x", `"example.com:8080"`},
		{"example.com/path", "not a URL"},
		{"example.com:443/path", "not a URL"},
		{"example.com/", "not a URL"},
		{"bücher.de", "xn--"},
		{"a..b", "empty label"},
		{".example.com", "empty label"},
		{"-a.example.com", "start or end"},
		{"a-.example.com", "start or end"},
		{"ex!ample.com", "only letters"},
		{"ex\"ample.com", "only letters"},
		{"ex\\ample.com", "only letters"},
		{strings.Repeat("a", 64) + ".com", "longer than 63"},
		{strings.Repeat("a.", 127) + "com", "at most 253"},
		{strings.Repeat("a", 301), "at most 300"},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded; want an error containing %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %q; want it to contain %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParse: Parse never panics; what it accepts is printable ASCII that
// round-trips (parsing the entry again gives the same entry), and an
// accepted entry allows what Suggest proposes for a destination it matches.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"api.anthropic.com", "*.x.org:8443", "10.1.2.0/24:5432", "[fd00::/8]:1", "[::1]:80", "::ffff:1.2.3.4", "*", "a.*.b", "https://x/y", "127.1", "x:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, c := range []byte(s) {
			if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
				t.Fatalf("accepted %q with byte %q", s, c)
			}
		}
		again, err := Parse(e.Raw)
		if err != nil || again != e {
			t.Fatalf("Parse(%q) = %+v, again %+v, %v", s, e, again, err)
		}
		if e.Port != 0 && (e.Port < 1 || e.Port > 65535) {
			t.Fatalf("port %d", e.Port)
		}
		r, err := Compile([]string{s}, nil)
		if err != nil {
			t.Fatal(err)
		}
		port := e.Port
		if port == 0 {
			port = 443
		}
		var host string
		switch e.Kind {
		case KindName:
			host = e.Host
		case KindWildcard:
			host = "sub." + e.Host
			if len(host) > 253 {
				return
			}
			if r.CheckName(e.Host, port).Allowed {
				t.Fatalf("%q allows its bare suffix", s)
			}
		case KindIP, KindCIDR:
			host = e.Prefix.Addr().String()
			if _, ok := r.NamedAddr(e.Prefix.Addr(), port); !ok {
				t.Fatalf("%q does not name its own address", s)
			}
		}
		if v := r.CheckName(host, port); !v.Allowed || v.Rule != s {
			t.Fatalf("%q does not allow %s:%d: %+v", s, host, port, v)
		}
		sug, ok := Suggest(host, port)
		if !ok {
			t.Fatalf("no suggestion for %s:%d", host, port)
		}
		r2, err := Compile([]string{sug}, nil)
		if err != nil || !r2.CheckName(host, port).Allowed {
			t.Fatalf("suggestion %q for %s:%d: %v", sug, host, port, err)
		}
	})
}
