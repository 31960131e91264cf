package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tmux 3.3a drops the output of a pane whose process exits the instant it
// starts in about 2% of runs (it handles the SIGCHLD before reading the pty),
// so tests that read a pane's output run echo-linger rather than /bin/echo.

// The test binary doubles as runner-agent: tmux panes started by the tests run
// it (os.Executable) with a subcommand, and the environment variable (set
// below, inherited by every tmux server the tests start) routes it to Main.
const asAgentEnv = "RUNNER_SHIM_TEST_AS_AGENT"

func TestMain(m *testing.M) {
	// Fuzz workers are this binary too, run with -test.* flags.
	if os.Getenv(asAgentEnv) == "1" && len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-test.") {
		switch os.Args[1] {
		case "dump-argv": // dump-argv FILE ARG...: write ARG... as JSON to FILE
			b, _ := json.Marshal(os.Args[3:])
			if err := os.WriteFile(os.Args[2], b, 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "echo-linger": // like /bin/echo, then stays 200ms so tmux surely reads the output
			fmt.Println(strings.Join(os.Args[2:], " "))
			time.Sleep(200 * time.Millisecond)
			os.Exit(0)
		case "raw-record": // raw-record FILE [bracketed]: see rawRecord
			os.Exit(rawRecord(os.Args[2], len(os.Args) > 3 && os.Args[3] == "bracketed"))
		case "orphan": // orphan PARENT DURATION: see orphan
			parent, _ := strconv.Atoi(os.Args[2])
			d, _ := time.ParseDuration(os.Args[3])
			os.Exit(orphan(parent, d))
		case "reaper-helper":
			os.Exit(reaperHelper())
		default:
			os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
		}
	}
	os.Setenv(asAgentEnv, "1")
	os.Exit(m.Run())
}

// rawRecord puts its terminal in raw mode (optionally asking for bracketed
// paste), prints "recorder ready", and appends every byte it reads from the
// terminal to file, exactly as the terminal delivered it, until killed.
func rawRecord(file string, bracketed bool) int {
	tio, err := unix.IoctlGetTermios(0, unix.TCGETS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// cfmakeraw
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(0, unix.TCSETS, tio); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if bracketed {
		os.Stdout.WriteString("\x1b[?2004h")
	}
	os.Stdout.WriteString("recorder ready\r\n")
	buf := make([]byte, 64<<10)
	for {
		n, err := os.Stdin.Read(buf)
		if n > 0 {
			f.Write(buf[:n])
		}
		if err != nil {
			return 0
		}
	}
}
