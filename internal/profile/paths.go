package profile

import (
	"path/filepath"
	"slices"
	"strings"
)

// MaskedPaths are hidden in every agent container. Setting them replaces
// the engine's list, so it starts with Docker's defaults (moby's
// oci.DefaultSpec), then adds what shows an agent the host: its kernel
// command line (boot parameters, root device, sometimes credentials), its
// swap files' paths, its disks and partitions, its loaded modules and
// kernel symbols. What an agent's programs need from /proc (meminfo,
// cpuinfo, stat, loadavg, uptime, self/*) stays.
var MaskedPaths = []string{
	// Docker's defaults.
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
	// runner's.
	"/proc/cmdline",
	"/proc/swaps",
	"/proc/diskstats",
	"/proc/partitions",
	"/proc/modules",
	"/proc/kallsyms",
}

// Docker also masks each CPU's thermal_throttle directory where the host
// has one (a side channel, GHSA-6fw5-f8r9-fgfm). The engine runs on this
// host (runner/uids.go refuses a remote one for allocation), so look here.
func init() { MaskedPaths = append(MaskedPaths, thermalThrottle()...) }

func thermalThrottle() []string {
	ps, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	slices.Sort(ps)
	return ps
}

// ReadonlyPaths are Docker's defaults, stated so that Check can require
// them.
var ReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// checkPaths requires every path of required and of want in got (the
// engine may hide or protect more, never less).
func checkPaths(setting string, required, want, got []string) []Violation {
	var missing []string
	for _, p := range append(slices.Clone(required), want...) {
		if !slices.Contains(got, p) && !slices.Contains(missing, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []Violation{{Setting: setting, Want: "to include " + strings.Join(missing, " "), Got: "[" + strings.Join(got, " ") + "]"}}
}
