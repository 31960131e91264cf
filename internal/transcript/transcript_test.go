package transcript

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10MiB": 10 << 20, "512KiB": 512 << 10, "1GB": 1e9, "16384": 16384, "16 KiB": 16 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10mb", "-1", "1.5MiB", "100", "8KiB", "99999999999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	t.Setenv(EnvMax, "")
	if n, err := MaxFromEnv(); err != nil || n != DefaultMax {
		t.Errorf("MaxFromEnv unset = %d, %v", n, err)
	}
	t.Setenv(EnvMax, "64KiB")
	if n, err := MaxFromEnv(); err != nil || n != 64<<10 {
		t.Errorf("MaxFromEnv = %d, %v", n, err)
	}
	t.Setenv(EnvMax, "lots")
	if _, err := MaxFromEnv(); err == nil {
		t.Error("MaxFromEnv accepted lots")
	}
}
