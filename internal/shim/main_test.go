package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// tmux 3.3a drops the output of a pane whose process exits the instant it
// starts in about 2% of runs (it handles the SIGCHLD before reading the pty),
// so tests that read a pane's output run echo-linger rather than /bin/echo.

// The test binary doubles as runner-agent: tmux panes started by the tests run
// it (os.Executable) with a subcommand, and the environment variable (set
// below, inherited by every tmux server the tests start) routes it to Main.
const asAgentEnv = "RUNNER_SHIM_TEST_AS_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(asAgentEnv) == "1" && len(os.Args) > 1 {
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
		case "reaper-helper":
			os.Exit(reaperHelper())
		default:
			os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
		}
	}
	os.Setenv(asAgentEnv, "1")
	os.Exit(m.Run())
}
