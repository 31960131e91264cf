package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

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
		case "reaper-helper":
			os.Exit(reaperHelper())
		default:
			os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
		}
	}
	os.Setenv(asAgentEnv, "1")
	os.Exit(m.Run())
}
