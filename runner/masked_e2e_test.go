package runner_test

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMaskedProcPaths: the host's kernel command line and the other paths
// runner masks read as empty inside an agent container, the engine reports
// them masked, and what agents need from /proc still reads (issue 7 §5).
func TestMaskedProcPaths(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		id := probeAgent(t, te, "mask")
		masked := []string{"/proc/cmdline", "/proc/swaps", "/proc/diskstats", "/proc/partitions", "/proc/modules"}

		t.Run("outside", func(t *testing.T) {
			c, err := te.raw.ContainerInspect(ctx(t), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range append(slices.Clone(masked), "/proc/kcore", "/proc/keys", "/sys/firmware") {
				if !slices.Contains(c.HostConfig.MaskedPaths, p) {
					t.Errorf("MaskedPaths %v lacks %s", c.HostConfig.MaskedPaths, p)
				}
			}
			if !slices.Contains(c.HostConfig.ReadonlyPaths, "/proc/sys") {
				t.Errorf("ReadonlyPaths %v lacks /proc/sys", c.HostConfig.ReadonlyPaths)
			}
		})

		t.Run("inside", func(t *testing.T) {
			var args []string
			for _, p := range masked {
				args = append(args, "size:"+p)
			}
			// Controls: what programs need still reads, and the host's
			// own /proc/cmdline is not empty (so "empty" means masked).
			args = append(args, "size:/proc/meminfo", "size:/proc/cpuinfo", "size:/proc/self/status")
			var got map[string]string
			execJSON(t, te, id, &got, append([]string{"/probe/testprobe", "reach"}, args...)...)
			if host, err := os.ReadFile("/proc/cmdline"); err != nil || len(host) == 0 {
				t.Fatalf("control: the host's /proc/cmdline is empty or unreadable (%v): the test cannot tell a mask", err)
			}
			for _, p := range masked {
				if r := got["size:"+p]; r != "0 bytes" && !strings.Contains(r, "denied") && !strings.Contains(r, "no such") {
					t.Errorf("%s inside the container: %s, want it empty or unreadable", p, r)
				}
			}
			for _, p := range []string{"/proc/meminfo", "/proc/cpuinfo", "/proc/self/status"} {
				if r := got["size:"+p]; r == "0 bytes" || !strings.HasSuffix(r, " bytes") {
					t.Errorf("%s inside the container: %s, want its content", p, r)
				}
			}
		})
	})
}
