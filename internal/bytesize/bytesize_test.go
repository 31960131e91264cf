package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for s, want := range map[string]int64{"4096": 4096, "4096B": 4096, "512MiB": 512 << 20, "1 GiB": 1 << 30, "2KB": 2000, "1GB": 1e9} {
		if got, err := Parse(s, "512MiB"); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for s, why := range map[string]string{"mb": "not a size", "5mb": "unknown unit", "5TiB": "unknown unit", "-1": "not a size", "99999999999999999999": "too large", "9223372036854775807KiB": "too large"} {
		if _, err := Parse(s, "512MiB"); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", s, err, why)
		}
	}
	if Format(64<<20) != "64MiB" || Format(1000) != "1000B" || Format(3<<10) != "3KiB" {
		t.Errorf("Format: %s %s %s", Format(64<<20), Format(1000), Format(3<<10))
	}
	if !Unitless("4096") || Unitless("4096B") {
		t.Error("Unitless")
	}
}
