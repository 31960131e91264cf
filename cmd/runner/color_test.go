package main

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/termsafe"
)

func TestPlainCommandOutputHasNoColour(t *testing.T) {
	// In tests stdout and stderr are no terminal: no colour at all.
	out, errOut, _ := runCLI(t, "stauts")
	if strings.Contains(out+errOut, "\x1b") {
		t.Errorf("colour when piped: %q %q", out, errOut)
	}
}

func TestPainter(t *testing.T) {
	var b strings.Builder
	// The chain run() builds: termsafe first, then the CLI's colour.
	w := termsafe.NewPlainWriter(newPainter(&b, planRules))
	w.Write([]byte("Run \"x\" on docker:\n\n    + create   alice\n  -/+ replace  bob\n"))
	w.Write([]byte("    - delete   carol\n      keep     dave\n  ! network: \"none\" -> \"bridge\"\n"))
	w.Write([]byte("partial "))
	w.Write([]byte("+ not a line start\n"))
	// A container's colour and a forged symbol line: plain, and unpainted.
	w.Write([]byte("\x1b[32mforged\x1b[0m\n"))
	want := "Run \"x\" on docker:\n\n    " + sgrGreen + "+" + sgrReset + " create   alice\n  " + sgrYellow + "-/+" + sgrReset + " replace  bob\n" +
		"    " + sgrRed + "-" + sgrReset + " delete   carol\n      keep     dave\n  " + sgrBold + sgrRed + "!" + sgrReset + " network: \"none\" -> \"bridge\"\n" +
		"partial + not a line start\nforged\n"
	if b.String() != want {
		t.Errorf("painted\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	w = termsafe.NewPlainWriter(newPainter(&b, stderrRules))
	w.Write([]byte("Error: no agent \"alise\"\nWarning: x\n  Error: indented\n"))
	if want := sgrBold + sgrRed + "Error:" + sgrReset + " no agent \"alise\"\n" + sgrBold + sgrYellow + "Warning:" + sgrReset + " x\n  Error: indented\n"; b.String() != want {
		t.Errorf("painted %q, want %q", b.String(), want)
	}
	for n, want := range map[int]string{0: "0 agents", 1: "1 agent", 2: "2 agents"} {
		if got := plural(n, "agent"); got != want {
			t.Errorf("plural(%d) = %q", n, got)
		}
	}
}

// On a terminal errors are red, unless NO_COLOR is set.
func TestColourOnATerminalOnly(t *testing.T) {
	env, bin := cliOnPath(t)
	for _, noColor := range []bool{false, true} {
		master, slave := openPTY(t)
		cmd := exec.Command(bin, "stauts")
		cmd.Env = append(env, "TERM=xterm-256color")
		if noColor {
			cmd.Env = append(cmd.Env, "NO_COLOR=1")
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		got, _ := io.ReadAll(master) // ends with EIO once the CLI exits
		cmd.Wait()
		master.Close()
		painted := strings.Contains(string(got), sgrBold+sgrRed+"Error:"+sgrReset)
		if painted == noColor {
			t.Errorf("NO_COLOR=%v: the terminal got %q", noColor, got)
		}
	}
}

func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}
