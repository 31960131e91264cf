package rules

import "testing"

func TestParseDestination(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
	}{
		{"pypi.org", "pypi.org", 443},
		{"PyPI.org.:8443", "pypi.org", 8443},
		{"https://pypi.org/simple/requests/", "pypi.org", 443},
		{"http://Example.com", "example.com", 80},
		{"https://u:p@registry.npmjs.org:8443/x", "registry.npmjs.org", 8443},
		{"http://[2001:db8::7]/", "2001:db8::7", 80},
		{"192.0.2.7:5432", "192.0.2.7", 5432},
		{"[2001:db8::7]:8080", "2001:db8::7", 8080},
		{"2001:db8::7", "2001:db8::7", 443},
		{"::ffff:127.0.0.1", "127.0.0.1", 443},
	} {
		h, p, err := ParseDestination(tc.in)
		if err != nil || h != tc.host || p != tc.port {
			t.Errorf("ParseDestination(%q) = %q, %d, %v; want %q, %d", tc.in, h, p, err, tc.host, tc.port)
		}
	}
	for _, bad := range []string{"", "a b", "x.org:0", "x.org:99999", "x.org:", "ftp://x.org", "ssh://git@github.com", "https://", "127.1", "*.x.org", "x.org/path", "[x.org]:80", "fe80::1%eth0"} {
		if h, p, err := ParseDestination(bad); err == nil {
			t.Errorf("ParseDestination(%q) = %q, %d", bad, h, p)
		}
	}
}
