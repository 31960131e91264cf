// Command runner-agent is the shim inside every agent container: PID 1 that
// runs the agent in tmux, and the small CLI the runner reaches it with.
// Build it static: CGO_ENABLED=0 go build ./cmd/runner-agent
// See internal/shim for the subcommands and their output.
package main

import "github.com/runner-dev/runner/internal/shim"

func main() { shim.Run() }
