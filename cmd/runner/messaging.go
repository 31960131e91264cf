package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/runner-dev/runner/internal/config"
)

func cmdSend(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	t, err := runTarget(ctx, g, "send", args, stderr, nil, 2)
	if err != nil {
		return err
	}
	defer t.close()
	cfg, rest, eng := t.cfg, t.rest, t.eng
	body := rest[1]
	if body == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return err
		}
		body = string(b)
	}
	if !agentGlob("send", rest[0]) {
		id, err := newRunner(g, eng, nil).Send(ctx, cfg, rest[0], body)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Message %d to %s accepted by the relay.\n", id, rest[0])
		return nil
	}
	// A glob the operator typed: every agent of the run it matches gets
	// its own message (each send is audited by the relay).
	to, err := matchAgents(cfg, rest[0])
	if err != nil {
		return err
	}
	r := newRunner(g, eng, nil)
	var failed []string
	for _, agent := range to {
		id, err := r.Send(ctx, cfg, agent, body)
		if err != nil {
			fmt.Fprintf(stderr, "Error: message to %s: %v\n", agent, err)
			failed = append(failed, agent)
			continue
		}
		fmt.Fprintf(stdout, "Message %d to %s accepted by the relay.\n", id, agent)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %s not sent (%s)", len(failed), plural(len(to), "message"), strings.Join(failed, ", "))
	}
	return nil
}

// agentGlob reports whether send's AGENT is a glob (eng-*, eng-[12]).
func agentGlob(cmd, agent string) bool {
	return cmd == "send" && strings.ContainsAny(agent, "*?[")
}

// matchAgents are the agents of cfg a glob matches, by path.Match.
func matchAgents(cfg *config.Config, glob string) ([]string, error) {
	if _, err := path.Match(glob, ""); err != nil {
		return nil, fmt.Errorf("%q is not a valid glob: %v", glob, err)
	}
	var out, all []string
	for _, a := range cfg.Agents {
		all = append(all, a.Name)
		if ok, _ := path.Match(glob, a.Name); ok {
			out = append(out, a.Name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q matches no agent of run %q; its agents are: %s", glob, cfg.Run.Name, strings.Join(all, ", "))
	}
	return out, nil
}
