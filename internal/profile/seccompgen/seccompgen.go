//go:build linux

package seccompgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// Errno values written into the profile. They are the asm-generic numbers
// (x86, arm, arm64, s390x, riscv64, loongarch64, ppc); spelling them out keeps
// the generated file independent of the architecture that generated it.
const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// Removed lists the syscalls runner takes out of the default profile's allow
// rules, each with the reason. A name ending in "*" is a prefix.
var Removed = []struct{ Name, Why string }{
	{"unshare", "creates namespaces (user namespaces reopen most of the kernel's privileged surface)"},
	{"setns", "joins other namespaces"},
	{"mount", "no filesystem manipulation inside an agent container"},
	{"umount", "no filesystem manipulation inside an agent container"},
	{"umount2", "no filesystem manipulation inside an agent container"},
	{"pivot_root", "no filesystem manipulation inside an agent container"},
	{"chroot", "no filesystem manipulation inside an agent container"},
	{"fsopen", "new mount API"},
	{"fsmount", "new mount API"},
	{"fsconfig", "new mount API"},
	{"fspick", "new mount API"},
	{"move_mount", "new mount API"},
	{"open_tree", "new mount API"},
	{"mount_setattr", "new mount API"},
	{"ptrace", "inspects and alters other processes (the agent shim, tmux)"},
	{"process_vm_readv", "reads other processes' memory"},
	{"process_vm_writev", "writes other processes' memory"},
	{"io_uring_setup", "io_uring: large kernel attack surface, bypasses syscall filtering"},
	{"io_uring_enter", "io_uring: large kernel attack surface, bypasses syscall filtering"},
	{"io_uring_register", "io_uring: large kernel attack surface, bypasses syscall filtering"},
	{"userfaultfd", "a staple of kernel exploits (stalls page faults to win races)"},
	{"perf_event_open", "kernel profiling: information leaks and a history of bugs"},
	{"bpf", "loads programs into the kernel"},
	{"keyctl", "kernel keyring is not namespaced"},
	{"add_key", "kernel keyring is not namespaced"},
	{"request_key", "kernel keyring is not namespaced"},
	{"kexec*", "loads a new kernel"},
	{"open_by_handle_at", "opens files by handle, bypassing the mount (the 'shocker' escape)"},
	{"name_to_handle_at", "the other half of open_by_handle_at; leaks file handles"},
	{"clone3", "flags are behind a pointer and cannot be filtered; it returns ENOSYS so libc falls back to clone, whose namespace flags are filtered"},
}

// NotInOldestDefault lists the syscalls moby/profiles allows that the
// oldest engine default runner supports, Docker 20.10 (Debian 12's
// docker.io 20.10.24), denies: runner's profile denies whatever any
// supported default denies, so it is stricter than each of them. The
// e2e test TestSeccompStricterThanEngineDefault checks this against the
// engine's own default on the real engine.
var NotInOldestDefault = []string{
	"pkey_alloc", "pkey_free", "pkey_mprotect", // memory protection keys
	"cachestat",
	"fchmodat2",
	"futex_wake", "futex_wait", "futex_requeue",
	"map_shadow_stack",
	"statmount", "listmount",
	"mseal",
	"uretprobe",
	"getxattrat", "setxattrat", "listxattrat", "removexattrat",
	"riscv_hwprobe",
}

func removed(name string) bool {
	if slices.Contains(NotInOldestDefault, name) {
		return true
	}
	for _, r := range Removed {
		if p, ok := strings.CutSuffix(r.Name, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if name == r.Name {
			return true
		}
	}
	return false
}

// Profile returns runner's profile in Docker's seccomp JSON format (with
// archMap and arch/kernel conditions, which Docker and moby/profiles'
// LoadProfile understand).
func Profile() (*seccomp.Seccomp, error) {
	p := seccomp.DefaultProfile()
	if p.DefaultAction != specs.ActErrno {
		return nil, fmt.Errorf("seccompgen: upstream default action is %q, want %q: review the upstream change", p.DefaultAction, specs.ActErrno)
	}
	// Anything not allowed fails with EPERM, as in Docker's default.
	eperm := uint(errnoEPERM)
	p.DefaultErrnoRet = &eperm

	var out []*seccomp.Syscall
	for _, r := range p.Syscalls {
		if r.Name != "" { // deprecated single-name form
			r.Names = append([]string{r.Name}, r.Names...)
			r.Name = ""
		}
		// A rule included only for containers holding a capability never
		// applies to ours: runner drops every capability.
		if r.Includes != nil && len(r.Includes.Caps) > 0 {
			continue
		}
		// A rule excluded for containers holding a capability always applies
		// to ours (e.g. the clone namespace-flag filter and clone3 → ENOSYS
		// when CAP_SYS_ADMIN is absent). Strip the condition so the rule is
		// unconditional even if a capability is added by mistake.
		if r.Excludes != nil && len(r.Excludes.Caps) > 0 {
			r.Excludes.Caps = nil
			if len(r.Excludes.Arches) == 0 && r.Excludes.MinKernel == nil {
				r.Excludes = nil
			}
		}
		if r.Action == specs.ActAllow {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), removed)
			if len(r.Names) == 0 {
				continue
			}
		}
		out = append(out, r)
	}

	// clone3 must fail with ENOSYS (not EPERM) so glibc falls back to clone,
	// as Docker does for containers without CAP_SYS_ADMIN. Upstream has such
	// a rule; make sure it is there and unconditional.
	enosys := uint(errnoENOSYS)
	found := false
	for _, r := range out {
		if slices.Contains(r.Names, "clone3") {
			if r.Action != specs.ActErrno || r.Includes != nil || r.Excludes != nil {
				return nil, fmt.Errorf("seccompgen: unexpected upstream clone3 rule %+v: review the upstream change", *r)
			}
			r.ErrnoRet = &enosys
			found = true
		}
	}
	if !found {
		out = append(out, &seccomp.Syscall{
			LinuxSyscall: specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		})
	}
	p.Syscalls = out
	return p, nil
}

// Generate returns runner's seccomp profile as indented JSON with a trailing
// newline: the content of policies/seccomp.json.
func Generate() ([]byte, error) {
	p, err := Profile()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "\t")
	if err := enc.Encode(p); err != nil { // Encode adds the trailing newline
		return nil, fmt.Errorf("seccompgen: encoding profile: %w", err)
	}
	return b.Bytes(), nil
}
