package rules

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func mustCompile(t *testing.T, allow, deny []string) *Rules {
	t.Helper()
	r, err := Compile(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckName(t *testing.T) {
	r := mustCompile(t,
		[]string{"api.anthropic.com", "github.com", "*.githubusercontent.com", "registry.npmjs.org:8443", "192.0.2.7", "10.1.2.0/24:5432", "[2001:db8::7]:8080", "*.example.org"},
		[]string{"gist.githubusercontent.com", "bad.example.org:443", "10.1.2.9"},
	)
	for _, tc := range []struct {
		host string
		port int
		want Verdict
	}{
		{"api.anthropic.com", 443, Verdict{Allowed: true, Rule: "api.anthropic.com"}},
		{"api.anthropic.com", 80, Verdict{Allowed: true, Rule: "api.anthropic.com"}},
		{"API.ANTHROPIC.COM.", 443, Verdict{Allowed: true, Rule: "api.anthropic.com"}},
		{"api.anthropic.com", 8443, Verdict{}},
		{"anthropic.com", 443, Verdict{}},
		{"evil-api.anthropic.com", 443, Verdict{}},
		{"api.anthropic.com.evil.net", 443, Verdict{}},
		{"raw.githubusercontent.com", 443, Verdict{Allowed: true, Rule: "*.githubusercontent.com"}},
		{"a.b.githubusercontent.com", 443, Verdict{Allowed: true, Rule: "*.githubusercontent.com"}},
		{"githubusercontent.com", 443, Verdict{}},
		{"xgithubusercontent.com", 443, Verdict{}},
		// deny wins over allow, and a deny entry without a port denies every port
		{"gist.githubusercontent.com", 443, Verdict{Rule: "gist.githubusercontent.com", Deny: true}},
		{"gist.githubusercontent.com", 22, Verdict{Rule: "gist.githubusercontent.com", Deny: true}},
		{"GIST.githubusercontent.com.", 80, Verdict{Rule: "gist.githubusercontent.com", Deny: true}},
		// a deny entry with a port denies that port only
		{"bad.example.org", 443, Verdict{Rule: "bad.example.org:443", Deny: true}},
		{"bad.example.org", 80, Verdict{Allowed: true, Rule: "*.example.org"}},
		{"registry.npmjs.org", 8443, Verdict{Allowed: true, Rule: "registry.npmjs.org:8443"}},
		{"registry.npmjs.org", 443, Verdict{}},
		// IP literals match IP and CIDR entries only
		{"192.0.2.7", 443, Verdict{Allowed: true, Rule: "192.0.2.7"}},
		{"::ffff:192.0.2.7", 80, Verdict{Allowed: true, Rule: "192.0.2.7"}},
		{"192.0.2.7", 22, Verdict{}},
		{"10.1.2.200", 5432, Verdict{Allowed: true, Rule: "10.1.2.0/24:5432"}},
		{"10.1.2.200", 443, Verdict{}},
		{"10.1.2.9", 5432, Verdict{Rule: "10.1.2.9", Deny: true}},
		{"10.1.3.1", 5432, Verdict{}},
		{"2001:db8::7", 8080, Verdict{Allowed: true, Rule: "[2001:db8::7]:8080"}},
		{"[2001:db8::7]", 8080, Verdict{Allowed: true, Rule: "[2001:db8::7]:8080"}},
		{"2001:DB8:0::7", 8080, Verdict{Allowed: true, Rule: "[2001:db8::7]:8080"}},
		{"fe80::1%eth0", 443, Verdict{}},
		// garbage and numeric names that resolvers would take for addresses
		{"", 443, Verdict{}},
		{"127.1", 443, Verdict{}},
		{"3221225991", 443, Verdict{}}, // 192.0.2.7 as one number
		{"api.anthropic.com:443", 443, Verdict{}},
		{"api.anthropic.com/x", 443, Verdict{}},
		{"[api.anthropic.com]", 443, Verdict{}},
		{"api.anthropic.com", 0, Verdict{}},
		{"api.anthropic.com", 65536, Verdict{}},
		{"api.anthropic.com", -443, Verdict{}},
	} {
		if got := r.CheckName(tc.host, tc.port); got != tc.want {
			t.Errorf("CheckName(%q, %d) = %+v, want %+v", tc.host, tc.port, got, tc.want)
		}
	}
}

func TestNameDoesNotAllowItsAddress(t *testing.T) {
	r := mustCompile(t, []string{"localhost", "example.com"}, nil)
	for _, h := range []string{"127.0.0.1", "::1", "93.184.215.14"} {
		if v := r.CheckName(h, 443); v.Allowed {
			t.Errorf("%s allowed by %q", h, v.Rule)
		}
	}
	if rule, ok := r.NamedAddr(netip.MustParseAddr("127.0.0.1"), 443); ok {
		t.Errorf("127.0.0.1 named by %q", rule)
	}
}

func TestNamedAddr(t *testing.T) {
	r := mustCompile(t,
		[]string{"127.0.0.2:8080", "10.1.2.0/24:5432", "fd00::/8", "169.254.169.254:80", "localhost:8080", "*.internal"},
		[]string{"10.1.2.9", "[fd00::66]:443"},
	)
	for _, tc := range []struct {
		ip   string
		port int
		rule string
	}{
		{"127.0.0.2", 8080, "127.0.0.2:8080"},
		{"::ffff:127.0.0.2", 8080, "127.0.0.2:8080"},
		{"127.0.0.2", 80, ""},
		{"127.0.0.1", 8080, ""}, // localhost:8080 is a name: it never names an address
		{"10.1.2.3", 5432, "10.1.2.0/24:5432"},
		{"10.1.2.9", 5432, ""}, // denied on every port
		{"10.1.2.3", 443, ""},
		{"fd00::1", 443, "fd00::/8"},
		{"fd00::66", 443, ""},
		{"fd00::66", 80, "fd00::/8"},
		{"169.254.169.254", 80, "169.254.169.254:80"},
		{"169.254.169.254", 443, ""},
		{"0.0.0.0", 443, ""},
	} {
		rule, ok := r.NamedAddr(netip.MustParseAddr(tc.ip), tc.port)
		if rule != tc.rule || ok != (tc.rule != "") {
			t.Errorf("NamedAddr(%s, %d) = %q, %v; want %q", tc.ip, tc.port, rule, ok, tc.rule)
		}
	}
	if _, ok := r.NamedAddr(netip.Addr{}, 80); ok {
		t.Error("the zero address is named")
	}
	if _, ok := r.NamedAddr(netip.MustParseAddr("fe80::1%eth0"), 80); ok {
		t.Error("a zoned address is named")
	}
}

func TestDeniedAddr(t *testing.T) {
	r := mustCompile(t, []string{"example.com"}, []string{"203.0.113.0/24", "[2001:db8::/32]:443"})
	for _, tc := range []struct {
		ip   string
		port int
		rule string
	}{
		{"203.0.113.5", 443, "203.0.113.0/24"},
		{"203.0.113.5", 9999, "203.0.113.0/24"},
		{"203.0.114.5", 443, ""},
		{"2001:db8::1", 443, "[2001:db8::/32]:443"},
		{"2001:db8::1", 80, ""},
	} {
		rule, ok := r.DeniedAddr(netip.MustParseAddr(tc.ip), tc.port)
		if rule != tc.rule || ok != (tc.rule != "") {
			t.Errorf("DeniedAddr(%s, %d) = %q, %v; want %q", tc.ip, tc.port, rule, ok, tc.rule)
		}
	}
}

func TestNilAndEmptyDenyEverything(t *testing.T) {
	var nilRules *Rules
	for _, c := range []Checker{nilRules, &Rules{}, mustCompile(t, nil, nil)} {
		if v := c.CheckName("example.com", 443); v != (Verdict{}) {
			t.Errorf("%+v", v)
		}
		if _, ok := c.NamedAddr(netip.MustParseAddr("127.0.0.1"), 443); ok {
			t.Error("named")
		}
	}
}

func TestCompileError(t *testing.T) {
	_, err := Compile([]string{"ok.com"}, []string{"ok.org", "*"})
	var ee *EntryError
	if !errors.As(err, &ee) || ee.List != "deny" || ee.Index != 1 || ee.Entry != "*" {
		t.Fatalf("err = %v", err)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		host string
		port int
		want string
	}{
		{"pypi.org", 443, "pypi.org"},
		{"PyPI.org.", 80, "pypi.org"},
		{"registry.npmjs.org", 8443, "registry.npmjs.org:8443"},
		{"192.0.2.7", 443, "192.0.2.7"},
		{"192.0.2.7", 5432, "192.0.2.7:5432"},
		{"::ffff:192.0.2.7", 22, "192.0.2.7:22"},
		{"2001:db8::7", 443, "2001:db8::7"},
		{"[2001:db8::7]", 8080, "[2001:db8::7]:8080"},
	} {
		got, ok := Suggest(tc.host, tc.port)
		if !ok || got != tc.want {
			t.Errorf("Suggest(%q, %d) = %q, %v; want %q", tc.host, tc.port, got, ok, tc.want)
			continue
		}
		if !mustCompile(t, []string{got}, nil).CheckName(tc.host, tc.port).Allowed {
			t.Errorf("the suggestion %q does not allow %s:%d", got, tc.host, tc.port)
		}
	}
	for _, bad := range []struct {
		host string
		port int
	}{{"", 443}, {"a b", 443}, {"127.1", 443}, {"x.org", 0}, {"x.org\x1b[2J", 443}, {"fe80::1%eth0", 443}} {
		if got, ok := Suggest(bad.host, bad.port); ok {
			t.Errorf("Suggest(%q, %d) = %q", bad.host, bad.port, got)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "egress.json")
	f := File{
		"eng": {Allow: []string{"api.anthropic.com", "*.githubusercontent.com"}, Deny: []string{"gist.githubusercontent.com"}},
		"ci":  {Allow: []string{"registry.npmjs.org:443"}},
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f["ci"] = Entries{Allow: f["ci"].Allow, Deny: []string{}}
	if !reflect.DeepEqual(got, f) {
		t.Errorf("loaded %#v, want %#v", got, f)
	}
	data, _ := os.ReadFile(path)
	want := `{
  "ci": {
    "allow": [
      "registry.npmjs.org:443"
    ],
    "deny": []
  },
  "eng": {
    "allow": [
      "api.anthropic.com",
      "*.githubusercontent.com"
    ],
    "deny": [
      "gist.githubusercontent.com"
    ]
  }
}
`
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestFileRejects(t *testing.T) {
	for _, bad := range []string{
		``,
		`[]`,
		`{"eng": {"allow": ["*"], "deny": []}}`,
		`{"Bad Name": {"allow": ["x.org"], "deny": []}}`,
		`{"eng": {"allow": ["x.org"], "deny": [], "extra": 1}}`,
		`{"eng": {"allow": ["x.org"], "deny": []}} {}`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
	if f, err := Decode([]byte(`null`)); err != nil || f == nil || len(f) != 0 {
		t.Errorf("null: %v %v", f, err)
	}
	if err := (File{"eng": {Allow: []string{"https://x"}}}).Save(filepath.Join(t.TempDir(), "e.json")); err == nil {
		t.Error("saved a bad entry")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
