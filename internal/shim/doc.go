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
// nudges tmux to reap its panes (see Tmux.PaneState), and waits. From then
// on every tmux command init sends goes over one persistent control-mode
// client (tmux -C attach-session -f ignore-size, see Control), not a client
// process per command: its replies (%begin/%end/%error blocks) are parsed
// as untrusted input, it is reconnected when it drops, and a command it
// cannot carry (an argument holding a newline), or any command while it is
// down, runs as a client process as before. The same connection subscribes
// to the pane's state (refresh-client -B; tmux evaluates it once a second
// and reports only changes), and init watches the pane's process with a
// pidfd, so nothing polls an idle agent. The recorder's `runner-agent
// stream` (below) is served from a second control connection, never this
// one: a snapshot's reply carries pane text, which could forge the end of
// the reply and the answers after it. On
// SIGTERM/SIGINT/SIGHUP it runs tmux kill-server (the pane gets SIGHUP), as
// PID 1 also SIGTERMs every other process, waits up to 5s for them to exit
// and exits 0. Exit codes: 0 after such a stop, 1 when the tmux
// server dies or cannot start, 2 for usage errors, 127 when tmux is not in
// PATH (one line on stderr, at once: the runner reports it as an apply error).
// The agent's own exit does not end init: the dead pane stays visible, with
// tmux's "Pane is dead (status N, ...)" line.
//
// Restarts (see Supervisor): RUNNER_RESTART=POLICY:MAX, set by the runner
// from the agent's restart and max_restarts, says whether init starts the
// command again — on-failure after a non-zero status or a signal, always
// after any exit, never not; unset means never. Init looks at the pane when
// tmux reports a change or the pane's process exits (every second while the
// control connection is down); after a pause of 1s, doubling up to 30s (back to 1s once a run
// lasted a minute), it respawns the pane (tmux respawn-pane; the container
// and tmux stay up) with `runner-agent exec --note NOTE -- COMMAND...`.
// The ended run's output and its "Pane is dead (status N, ...)" line are
// first moved into the scrollback (respawn-pane clears the screen), and NOTE
// ("runner-agent: the command ended (exit status 3); restart 1 of 5 ...")
// is the new run's first line, so capture shows every status. After MAX
// restarts the pane stays dead with the last status.
//
// Idle reports: while the command runs, init tells the relay (an idle
// request on a connection of its own) when the pane has printed nothing for
// one of the agent's after_idle times, which the relay lists in its welcome;
// once per time per quiet spell, any output starting a new spell. The relay
// fires the matching check-in, delivered like any other.
//
// When the container has a relay — the credential file
// /run/secrets/runner-credential exists, and so does /run/runner/relay.sock
// or its (mounted) directory; RUNNER_CREDENTIAL and RUNNER_RELAY_SOCKET
// override the paths — init also delivers the agent's messages into its pane
// (see Deliverer.Run): it stays subscribed, reconnecting after 100ms doubling
// to 5s with jitter; drops a delivery whose id it already pasted; never
// pastes into a pane whose command exited (it closes the subscription, so the
// relay keeps the message, and checks the pane every second until it runs
// again); waits until a new pane process has run for 2s; otherwise pastes
// and acknowledges. Each message reaches the pane as text, labelled:
//
//	[from NAME] body             a message from NAME (the relay's authenticated identity)
//	[check-in] body              a check-in (scheduled, or declared in the config)
//	[brief from operator] body   the agent's brief
//
// the whole line sanitized (SanitizeMessage: no control characters but \n and
// \t, no DEL, ESC or C1, no invalid UTF-8; trailing newlines dropped), put in
// a tmux buffer (load-buffer from a 0600 file in the socket's 0700 directory,
// removed at once, when sent over the control connection; from the client's
// stdin otherwise: never as an argument) and pasted with paste-buffer -p (bracketed paste if
// the program asked for it), then Enter pressed by a separate send-keys. A
// message "C-c" or "Enter" is text like any other.
//
//	runner-agent exec [--note TEXT] -- COMMAND [ARG...]
//
// What runs in the pane: prints TEXT, if given, on a line of its own, looks
// COMMAND up in PATH and runs it as its child; when it ended, asks the
// terminal for the cursor position and, once tmux answered (so it has read
// all the command printed: tmux 3.3 drops the output of a pane process that
// exits before that), exits with its status or dies of its signal. Off a
// terminal it execve's COMMAND instead. Exit 127 with
// `runner-agent: command "X" not found in PATH`, 126 if it cannot be run.
//
//	runner-agent capture [--lines N] [--raw] [--framed] [--socket PATH]
//
// Prints the last N lines (default 100; 0 = the whole scrollback) of the
// agent's pane — scrollback and screen, wrapped lines joined, trailing blank
// lines and trailing spaces removed, control characters stripped so nothing
// can act on the reader's terminal. Exit 1 with a message on stderr if there
// is no tmux server or pane. --raw keeps colours and attributes as escape
// sequences (tmux capture-pane -e) and strips nothing. --framed, which the
// runner always passes, prints "runner-agent capture v1 N\n" first, N being
// the text's length in bytes; the runner rejects output not framed exactly so.
//
//	runner-agent attach --id ID [--write] | --end ID
//
// An operator's attach: becomes (exec, same pid) the tmux client, read-only
// unless --write, with RUNNER_ATTACH_ID=ID in its environment. --end ID ends
// every process of this uid carrying that ID (SIGTERM, SIGKILL after 2s):
// the runner runs it on detach, since the engine leaves an exec's process
// running when its client goes away.
//
//	runner-agent status [--socket PATH]
//
// Prints one JSON line (type Status):
//
//	{"tmux":true,"pane_dead":false,"exit_status":null,"exit_signal":null,"pid":18,"command":["claude"],
//	 "relay":"connected","restart":"on-failure:5","restarts":0,"restarting":false,"idle_s":42}
//
// pane_dead becomes true once the command has exited and tmux has its status;
// exit_status is then its exit code, or null with exit_signal set if a signal
// killed it. pid is the pane's process (the agent). relay is message delivery:
// "connected", "connecting", "waiting: pane exited" (messages wait at the
// relay) or "off" (no relay in this container); init keeps it in
// /tmp/runner-tmux/relay-state. restart is init's policy, restarts how
// often it restarted the command, restarting whether the command exited and
// will be started again (pane_dead is true meanwhile; init keeps these in
// /tmp/runner-tmux/supervisor). idle_s is how many seconds ago the pane last
// printed anything (tmux's window_activity). If no tmux server answers it prints
// {"tmux":false,...,"error":"..."} and exits 1.
//
// The agent's messaging commands, each one connection to the relay with the
// container's credential (exit 0 done, 1 refused or unreachable, with the
// reason on stderr, 2 usage):
//
//	runner-agent send TO MESSAGE...     prints "sent #ID to TO"; MESSAGE - reads stdin;
//	                                    a refusal: "runner-agent: relay refused: REASON (CODE)"
//	runner-agent peers                  who this agent may send to, one per line
//	runner-agent inbox [-n N]           the last N (1-50, default 20) delivered, newest last:
//	                                    "#ID [from NAME] body"
//	runner-agent schedule DURATION MESSAGE...
//	                                    a check-in to itself (Go duration: 90s, 1.5m, 2h);
//	                                    prints "check-in #ID due RFC3339 (in D)"
//
// --socket exists for tests and debugging; the runner never passes it.
//
// `runner-agent stream` (the host recorder's, run through the engine's exec
// API) asks init for the pane's snapshot and output on stream.sock next to
// the tmux socket (see StreamServer), so it is one process in the container;
// without init's server it runs its own read-only control client.
//
// All tmux interaction is in type Tmux (NewSession, SetOption, Option,
// Capture, PaneState, ServerPID, KillServer, Respawn, and for messages
// Paste, Submit, PasteMessage).
package shim
