package image

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"
)

// isDynamicELF reports whether p is an ELF file with a program interpreter.
func isDynamicELF(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, ok, err := interp(f)
	return ok, err
}

func interp(f *elf.File) (string, bool, error) {
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return "", false, err
			}
			return string(bytes.TrimRight(b, "\x00")), true, nil
		}
	}
	return "", false, nil
}

// checkStatic makes sure p is a statically linked ELF executable.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("runner-agent binary %s is not an ELF executable: %w", p, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("runner-agent binary %s is not an executable (%s)", p, f.Type)
	}
	ip, dynamic, err := interp(f)
	if err != nil {
		return err
	}
	if libs, _ := f.ImportedLibraries(); dynamic || len(libs) > 0 {
		return fmt.Errorf("runner-agent binary %s is dynamically linked (loader %s, libraries %v): build it with CGO_ENABLED=0 go build ./cmd/runner-agent", p, ip, libs)
	}
	return nil
}

// resolveLibraries adds, for every dynamically linked program collected, its
// loader and every shared library it needs, as the loader itself resolves
// them (`LOADER --list PROGRAM`, run with an argv).
func (b *builder) resolveLibraries() error {
	seen := map[string]bool{}
	var libc string
	for _, prog := range b.elfs {
		f, err := elf.Open(prog)
		if err != nil {
			return err
		}
		loader, _, err := interp(f)
		f.Close()
		if err != nil {
			return err
		}
		if !seen[loader] {
			seen[loader] = true
			if _, err := b.addPath(loader); err != nil {
				return fmt.Errorf("%s: its loader %s: %w", prog, loader, err)
			}
		}
		libs, err := listLibraries(loader, prog)
		if err != nil {
			return err
		}
		for _, lib := range libs {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			real, err := b.addPath(lib)
			if err != nil {
				return fmt.Errorf("%s needs %s: %w", prog, lib, err)
			}
			b.libs++
			if path.Base(lib) == "libc.so.6" {
				libc = real
			}
		}
	}
	// glibc loads libgcc_s at run time (pthread_cancel, backtraces): it
	// never shows up in --list.
	if libc != "" {
		if p := path.Join(path.Dir(libc), "libgcc_s.so.1"); fileExists(p) && !seen[p] {
			if _, err := b.addPath(p); err != nil {
				return err
			}
			b.libs++
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// listLibraries runs the dynamic loader in list mode, which maps the
// program's libraries without running any of its code.
func listLibraries(loader, prog string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, loader, "--list", prog)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"} // no LD_LIBRARY_PATH or LD_PRELOAD from the caller
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --list %s: %v: %s", loader, prog, err, strings.TrimSpace(stderr.String()))
	}
	return parseList(prog, stdout.String())
}

// parseList reads the loader's list output:
//
//	linux-vdso.so.1 (0x...)                           in the kernel: skipped
//	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)
//	/lib64/ld-linux-x86-64.so.2 (0x...)               the loader itself
//	libfoo.so.1 => not found                          an error
func parseList(prog, out string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if name, target, ok := strings.Cut(line, " => "); ok {
			if strings.HasPrefix(target, "not found") {
				return nil, fmt.Errorf("%s needs %s, which is not installed on this machine", prog, name)
			}
			p, _, _ := strings.Cut(target, " (")
			if !path.IsAbs(p) {
				return nil, fmt.Errorf("%s: unexpected loader output %q", prog, line)
			}
			libs = append(libs, p)
			continue
		}
		p, _, _ := strings.Cut(line, " (")
		if path.IsAbs(p) {
			libs = append(libs, p)
		}
	}
	if len(libs) == 0 {
		return nil, errors.New(prog + ": the loader listed no libraries")
	}
	return libs, nil
}

func elfOpen(p string) (*elf.File, error) { return elf.Open(p) }
