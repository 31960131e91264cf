package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Self is the probe's own security state as the kernel answers system
// calls (prctl, capget), not as /proc prints it: gVisor's /proc/PID/status
// has no NoNewPrivs and no CapAmb line, so there these are the only
// inside answers. Errors are reported as values, for the test to judge.
type Self struct {
	NoNewPrivs string `json:"no_new_privs"` // PR_GET_NO_NEW_PRIVS: "1" when set
	Seccomp    string `json:"seccomp"`      // PR_GET_SECCOMP: "2" = filter mode
	CapEff     string `json:"cap_eff"`      // capget, as /proc prints them
	CapPrm     string `json:"cap_prm"`
	CapInh     string `json:"cap_inh"`
	CapBnd     string `json:"cap_bnd"` // PR_CAPBSET_READ over every capability
	CapAmb     string `json:"cap_amb"` // PR_CAP_AMBIENT_IS_SET over every capability
}

// maxCap is past the last capability any kernel defines (CAP_CHECKPOINT_RESTORE
// is 40); asking about an unknown one returns EINVAL, which ends the scan.
const maxCap = 64

func self() Self {
	var s Self
	s.NoNewPrivs = prctlValue(unix.PR_GET_NO_NEW_PRIVS, 0)
	s.Seccomp = prctlValue(unix.PR_GET_SECCOMP, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		s.CapEff, s.CapPrm, s.CapInh = "error: "+err.Error(), "error: "+err.Error(), "error: "+err.Error()
	} else {
		join := func(lo, hi uint32) string { return fmt.Sprintf("%016x", uint64(hi)<<32|uint64(lo)) }
		s.CapEff = join(data[0].Effective, data[1].Effective)
		s.CapPrm = join(data[0].Permitted, data[1].Permitted)
		s.CapInh = join(data[0].Inheritable, data[1].Inheritable)
	}
	s.CapBnd = capScan(func(c uintptr) (int, error) { return unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0) })
	s.CapAmb = capScan(func(c uintptr) (int, error) {
		return unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, c, 0, 0)
	})
	return s
}

func prctlValue(op int, arg uintptr) string {
	v, err := unix.PrctlRetInt(op, arg, 0, 0, 0)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprint(v)
}

// capScan asks about each capability in turn and returns the set as a mask,
// in /proc's format; an error other than EINVAL (past the last one) is
// returned as the value.
func capScan(isSet func(c uintptr) (int, error)) string {
	var mask uint64
	for c := uintptr(0); c < maxCap; c++ {
		v, err := isSet(c)
		if err == unix.EINVAL {
			break
		}
		if err != nil {
			return fmt.Sprintf("error: cap %d: %v", c, err)
		}
		if v == 1 {
			mask |= 1 << c
		}
	}
	return fmt.Sprintf("%016x", mask)
}
