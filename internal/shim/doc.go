// Package shim is runner-agent, the program inside every agent container.
//
// # Subcommands
//
//	runner-agent init [--socket PATH] -- COMMAND [ARG...]
//
// The container's entrypoint and PID 1. It starts one tmux server on the
// fixed socket DefaultSocket (/tmp/runner-tmux/default, in a 0700 directory)
// with, in a single tmux invocation and so before the command can exit:
//
//	tmux -u -f /dev/null -S /tmp/runner-tmux/default \
//	  set-option -g remain-on-exit on ; set-option -g history-limit 50000 ; \
//	  set-option -g @runner-command '<argv as JSON>' ; set-option -g default-terminal tmux-256color ; \
//	  new-session -d -P -F '#{pane_id}' -s agent -x 200 -y 50 -c <cwd> -- \
//	  /usr/local/bin/runner-agent exec -- COMMAND [ARG...]
//
// tmux is always given several arguments (a single one would go to sh -c), and
// every argument is escaped for tmux's own parser (see tmuxArg), so the
// agent's argv arrives byte for byte. Init then reaps orphans (see Reaper),
// nudges tmux to reap its panes (see Tmux.PaneState), and waits. On
// SIGTERM/SIGINT/SIGHUP it runs tmux kill-server (the pane gets SIGHUP), as
// PID 1 also SIGTERMs every other process, waits up to 5s for them to exit
// and exits 0. Exit codes: 0 after such a stop, 1 when the tmux
// server dies or cannot start, 2 for usage errors, 127 when tmux is not in
// PATH (one line on stderr, at once: the runner reports it as an apply error).
// The agent's own exit does not end init: the dead pane stays visible, with
// tmux's "Pane is dead (status N, ...)" line.
//
//	runner-agent exec -- COMMAND [ARG...]
//
// What runs in the pane: looks COMMAND up in PATH and execve's it (the pane's
// process is then the agent itself). Exit 127 with
// `runner-agent: command "X" not found in PATH`, 126 if it cannot be run.
//
//	runner-agent capture [--lines N] [--socket PATH]
//
// Prints the last N lines (default 100; 0 = the whole scrollback) of the
// agent's pane — scrollback and screen, wrapped lines joined, trailing blank
// lines and trailing spaces removed, control characters stripped so nothing
// can act on the reader's terminal. Exit 1 with a message on stderr if there
// is no tmux server or pane.
//
//	runner-agent status [--socket PATH]
//
// Prints one JSON line (type Status):
//
//	{"tmux":true,"pane_dead":false,"exit_status":null,"exit_signal":null,"pid":18,"command":["claude"]}
//
// pane_dead becomes true once the command has exited and tmux has its status;
// exit_status is then its exit code, or null with exit_signal set if a signal
// killed it. pid is the pane's process (the agent). If no tmux server answers
// it prints {"tmux":false,...,"error":"..."} and exits 1.
//
// --socket exists for tests and debugging; the runner never passes it.
//
// All tmux interaction is in type Tmux (NewSession, SetOption, Option,
// Capture, PaneState, ServerPID, KillServer), where message delivery
// (load-buffer/paste-buffer) belongs.
package shim
