//go:build linux

package seccompgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/policies"
)

func TestCheckedInProfileIsGenerated(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(policies.Seccomp, want) {
		t.Fatal("policies/seccomp.json is not what seccompgen.Generate produces: run `go generate ./internal/profile/...` and commit the result")
	}
	if !bytes.HasSuffix(want, []byte("}\n")) || bytes.HasSuffix(want, []byte("\n\n")) {
		t.Error("Generate output must end with exactly one newline")
	}
}

// shipped is the profile the binary carries.
func shipped(t *testing.T) *seccomp.Seccomp {
	t.Helper()
	var p seccomp.Seccomp
	dec := json.NewDecoder(bytes.NewReader(policies.Seccomp))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("policies/seccomp.json: %v", err)
	}
	return &p
}

// rule is one expanded rule, as a runtime would install it.
type rule struct {
	name     string
	action   specs.LinuxSeccompAction
	errnoRet uint // 0 if unset
	args     string
}

// expand mirrors moby/profiles' setupSeccomp for a container holding no
// capabilities, on arch (libseccomp's name, as used in includes/excludes) and
// a kernel that is either newer than every minKernel or older than all of them.
// It lets the tests cover every architecture, not only the one they run on.
func expand(t *testing.T, p *seccomp.Seccomp, arch string, newKernel bool) []rule {
	t.Helper()
	var out []rule
	for _, r := range p.Syscalls {
		names := r.Names
		if r.Name != "" {
			names = []string{r.Name}
		}
		if e := r.Excludes; e != nil {
			if slices.Contains(e.Arches, arch) || (e.MinKernel != nil && newKernel) {
				continue
			}
			// Excludes.Caps: we hold none, so such rules always apply.
		}
		if i := r.Includes; i != nil {
			if len(i.Arches) > 0 && !slices.Contains(i.Arches, arch) {
				continue
			}
			if len(i.Caps) > 0 || (i.MinKernel != nil && !newKernel) {
				continue
			}
		}
		args, err := json.Marshal(r.Args)
		if err != nil {
			t.Fatal(err)
		}
		var errno uint
		if r.ErrnoRet != nil {
			errno = *r.ErrnoRet
		}
		for _, n := range names {
			out = append(out, rule{name: n, action: r.Action, errnoRet: errno, args: string(args)})
		}
	}
	return out
}

var arches = []string{"amd64", "x86", "x32", "arm", "arm64", "ppc64le", "s390", "s390x", "riscv64", "mips64", "mipsel64", "loongarch64"}

// forEach runs f for the shipped profile expanded on every arch and kernel.
func forEach(t *testing.T, f func(t *testing.T, ours, dflt []rule)) {
	ours := shipped(t)
	for _, arch := range arches {
		for _, newKernel := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/newkernel=%v", arch, newKernel), func(t *testing.T) {
				f(t, expand(t, ours, arch, newKernel), expand(t, seccomp.DefaultProfile(), arch, newKernel))
			})
		}
	}
}

func allowed(rules []rule, name string) []rule {
	var out []rule
	for _, r := range rules {
		if r.name == name && r.action == specs.ActAllow {
			out = append(out, r)
		}
	}
	return out
}

func TestDefaultAction(t *testing.T) {
	p := shipped(t)
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != uint(unix.EPERM) {
		t.Errorf("default action = %s errnoRet %v, want SCMP_ACT_ERRNO with EPERM", p.DefaultAction, p.DefaultErrnoRet)
	}
	if !slices.EqualFunc(p.ArchMap, seccomp.DefaultProfile().ArchMap, func(a, b seccomp.Architecture) bool {
		return a.Arch == b.Arch && slices.Equal(a.SubArches, b.SubArches)
	}) {
		t.Error("archMap differs from Docker's default")
	}
}

func TestNoCapabilityConditions(t *testing.T) {
	for i, r := range shipped(t).Syscalls {
		if r.Includes != nil && len(r.Includes.Caps) > 0 {
			t.Errorf("rule %d (%v) has includes.caps %v", i, r.Names, r.Includes.Caps)
		}
		if r.Excludes != nil && len(r.Excludes.Caps) > 0 {
			t.Errorf("rule %d (%v) has excludes.caps %v", i, r.Names, r.Excludes.Caps)
		}
	}
}

func TestRemovedSyscallsNotAllowed(t *testing.T) {
	names := []string{"kexec_load", "kexec_file_load"}
	for _, r := range Removed {
		if r.Name[len(r.Name)-1] != '*' {
			names = append(names, r.Name)
		}
	}
	names = append(names, NotInOldestDefault...)
	for _, must := range []string{"unshare", "mount", "ptrace", "clone3", "setns", "bpf", "open_by_handle_at", "pkey_alloc", "pkey_free", "pkey_mprotect", "cachestat"} {
		if !slices.Contains(names, must) {
			t.Fatalf("Removed no longer lists %s", must)
		}
	}
	forEach(t, func(t *testing.T, ours, _ []rule) {
		for _, n := range names {
			if a := allowed(ours, n); len(a) > 0 {
				t.Errorf("%s is allowed: %+v", n, a)
			}
		}
	})
}

func TestClone3ReturnsENOSYS(t *testing.T) {
	forEach(t, func(t *testing.T, ours, _ []rule) {
		var got []rule
		for _, r := range ours {
			if r.name == "clone3" {
				got = append(got, r)
			}
		}
		want := []rule{{name: "clone3", action: specs.ActErrno, errnoRet: uint(unix.ENOSYS), args: "null"}}
		if !slices.Equal(got, want) {
			t.Errorf("clone3 rules = %+v, want %+v", got, want)
		}
	})
}

func TestCloneNamespaceFlagsFiltered(t *testing.T) {
	const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	p := shipped(t)
	forEach(t, func(t *testing.T, ours, _ []rule) {
		if len(allowed(ours, "clone")) == 0 {
			t.Fatal("clone is not allowed at all: nothing could start a process")
		}
	})
	for _, r := range p.Syscalls {
		if !slices.Contains(r.Names, "clone") || r.Action != specs.ActAllow {
			continue
		}
		if len(r.Args) != 1 {
			t.Fatalf("clone rule has args %+v, want exactly the namespace-flag filter", r.Args)
		}
		a := r.Args[0]
		if a.Op != specs.OpMaskedEqual || a.Value != nsFlags || a.ValueTwo != 0 {
			t.Errorf("clone rule arg %+v, want flags & %#x == 0", a, nsFlags)
		}
	}
}

// TestAtLeastAsStrictAsDefault: every syscall (and argument filter) our
// profile allows is allowed by Docker's default for a container holding no
// capabilities, and every errno rule of the default is kept.
func TestAtLeastAsStrictAsDefault(t *testing.T) {
	forEach(t, func(t *testing.T, ours, dflt []rule) {
		for _, r := range ours {
			if r.action != specs.ActAllow {
				continue
			}
			covered := false
			for _, d := range allowed(dflt, r.name) {
				if d.args == "null" || d.args == r.args {
					covered = true
					break
				}
			}
			if !covered {
				t.Errorf("%s (args %s) is allowed by ours but not by Docker's default", r.name, r.args)
			}
		}
		for _, d := range dflt {
			if d.action != specs.ActAllow && !slices.Contains(ours, d) {
				t.Errorf("Docker's default rule %+v is missing", d)
			}
		}
	})
}

// TestLoadsWithDockerLoader runs the shipped profile through the same code
// Docker uses, on this host, and compares the result with the default's.
func TestLoadsWithDockerLoader(t *testing.T) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	ours, err := seccomp.LoadProfile(string(policies.Seccomp), rs)
	if err != nil {
		t.Fatalf("Docker's loader rejects policies/seccomp.json: %v", err)
	}
	dflt, err := seccomp.GetDefaultProfile(rs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ours.Architectures, dflt.Architectures) || len(ours.Architectures) == 0 {
		t.Errorf("architectures = %v, default %v", ours.Architectures, dflt.Architectures)
	}
	allow := map[string][]string{}
	for _, s := range dflt.Syscalls {
		if s.Action == specs.ActAllow {
			b, _ := json.Marshal(s.Args)
			for _, n := range s.Names {
				allow[n] = append(allow[n], string(b))
			}
		}
	}
	for _, s := range ours.Syscalls {
		if s.Action != specs.ActAllow {
			continue
		}
		b, _ := json.Marshal(s.Args)
		for _, n := range s.Names {
			if !slices.Contains(allow[n], "null") && !slices.Contains(allow[n], string(b)) {
				t.Errorf("%s (args %s) allowed by ours, not by the default", n, b)
			}
		}
	}
	for _, n := range []string{"unshare", "mount", "ptrace", "clone3"} {
		for _, s := range ours.Syscalls {
			if s.Action == specs.ActAllow && slices.Contains(s.Names, n) {
				t.Errorf("%s allowed after loading", n)
			}
		}
	}
}
