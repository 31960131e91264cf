package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/runner"
)

// cmdEgress dispatches `runner egress SUBCOMMAND`.
func cmdEgress(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "check" {
		return cmdEgressCheck(ctx, g, args[1:], stdout, stderr)
	}
	// Help, and completion's probe, come from check's flag set.
	if len(args) == 0 && g.probe || len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return cmdEgressCheck(ctx, g, []string{"--help"}, stdout, stderr)
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return cmdEgressReport(ctx, g, args, stdout, stderr)
	}
	fmt.Fprintln(stderr, egressUsage)
	return exitError{2}
}

const egressUsage = "Usage: runner egress FILE [AGENT] [-o json]\n       runner egress check FILE AGENT HOST[:PORT]|URL [-o json]"

// cmdEgressReport prints, per agent, what it reached and was refused
// (from the run's audit log), and for each refusal the line to paste.
func cmdEgressReport(_ context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var output string
	fs := g.newFlags("egress", stderr)
	fs.StringVar(&output, "o", "text", "output format: text or json")
	pos, err := g.parseFlags(fs, "egress", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		fmt.Fprintln(stderr, egressUsage)
		return exitError{2}
	}
	if output != "text" && output != "json" {
		return fmt.Errorf("-o %q: use text or json", output)
	}
	g.setupLog(stderr)
	cfg, files, err := loadConfig(g, pos[0], stderr)
	g.files = files
	if err != nil {
		return err
	}
	agent := ""
	if len(pos) == 2 {
		if err := runner.CheckAgent(cfg, pos[1]); err != nil {
			return err
		}
		agent = pos[1]
	}
	rep, err := (&runner.Runner{}).EgressReport(cfg, agent)
	if err != nil {
		return err
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeEgressReport(stdout, rep)
	return nil
}

func writeEgressReport(w io.Writer, rep runner.EgressReport) {
	for i, a := range rep.Agents {
		if i > 0 {
			fmt.Fprintln(w)
		}
		switch a.Source {
		case "none":
			fmt.Fprintf(w, "%s: no egress (no egress block, no egress_default)\n", a.Agent)
		case "bridge":
			fmt.Fprintf(w, "%s: network = \"bridge\": no proxy, nothing recorded\n", a.Agent)
		default:
			fmt.Fprintf(w, "%s: %s, %s up, %s down", a.Agent, a.Line(), byteCount(a.BytesUp), byteCount(a.BytesDown))
			if a.Errors > 0 {
				fmt.Fprintf(w, ", %d malformed or over a limit", a.Errors)
			}
			fmt.Fprintln(w)
		}
		if len(a.Destinations) == 0 {
			if a.Source != "none" && a.Source != "bridge" {
				fmt.Fprintln(w, "  no connections recorded")
			}
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  DESTINATION\tALLOWED\tDENIED\tUP\tDOWN")
		for _, d := range a.Destinations {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", hostPort(d.Host, d.Port), d.Allowed, d.Denied, byteCount(d.BytesUp), byteCount(d.BytesDown))
		}
		tw.Flush()
		for _, d := range a.Destinations {
			if d.Denied == 0 {
				continue
			}
			fmt.Fprintf(w, "  denied %s:", hostPort(d.Host, d.Port))
			if d.Reason != "" {
				fmt.Fprintf(w, " %s", d.Reason)
			}
			fmt.Fprintln(w)
			if d.Line != "" {
				fmt.Fprintf(w, "    to allow it, in %s:\n      %s\n", d.Where, d.Line)
			}
			if d.Note != "" {
				fmt.Fprintf(w, "    note: %s\n", d.Note)
			}
		}
	}
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// byteCount is n in B, KiB, MiB or GiB.
func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n)/unit, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if f < unit {
			break
		}
		f, u = f/unit, next
	}
	return fmt.Sprintf("%.1f %s", f, u)
}

// Exit status of `runner egress check`, as grep's: 0 the destination is
// allowed, 1 it is denied, 2 the question could not be answered (usage, a
// bad file, an unknown agent, a malformed destination).
const (
	checkAllowed = 0
	checkDenied  = 1
	checkTrouble = 2
)

// egressCheck is the answer, as -o json prints it.
type egressCheck struct {
	Agent   string `json:"agent"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	Allowed bool   `json:"allowed"`
	// Rule is the entry that decided, as the file wrote it ("" when none
	// matched); Deny says it is a deny entry.
	Rule string `json:"rule"`
	Deny bool   `json:"deny"`
	// Source is where the agent's rules come from: "egress" (its block),
	// "egress_default" (the run's), "none" (it has no egress) or
	// "bridge" (network = "bridge": no proxy, every address).
	Source string `json:"source"`
	// Suggest is the entry to add to allow, when one would help.
	Suggest string `json:"suggest,omitempty"`
	Note    string `json:"note,omitempty"`
}

// cmdEgressCheck answers whether AGENT's rules allow a destination. It is
// a dry run of the proxy's decision by name: nothing is resolved or
// dialled, and no engine is touched.
func cmdEgressCheck(_ context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var output string
	cfg, pos, err := fileCommand(g, "egress check", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "text", "output format: text or json")
	}, 2, " AGENT HOST[:PORT]|URL")
	var ee exitError
	if errors.As(err, &ee) && ee.code != 0 {
		return exitError{checkTrouble} // a bad file is not a denial
	}
	if err != nil {
		return err
	}
	if output != "text" && output != "json" {
		fmt.Fprintf(stderr, "Error: -o %q: use text or json\n", output)
		return exitError{checkTrouble}
	}
	agent, ok := findAgent(cfg, pos[0])
	if !ok {
		// The nearest name, or the list, as every command that takes AGENT says it.
		fmt.Fprintf(stderr, "Error: %v\n", runner.CheckAgent(cfg, pos[0]))
		return exitError{checkTrouble}
	}
	host, port, err := rules.ParseDestination(pos[1])
	if err != nil {
		fmt.Fprintf(stderr, "Error: %s\n", err)
		return exitError{checkTrouble}
	}
	res := checkEgress(agent, host, port)
	if output == "json" {
		b, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeEgressCheck(stdout, res)
	}
	if res.Allowed {
		return nil
	}
	return exitError{checkDenied}
}

func findAgent(cfg *config.Config, name string) (config.Agent, bool) {
	for _, a := range cfg.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return config.Agent{}, false
}

// checkEgress decides as the proxy would, by name, before resolution.
func checkEgress(a config.Agent, host string, port int) egressCheck {
	res := egressCheck{Agent: a.Name, Host: host, Port: port}
	suggest, _ := rules.Suggest(host, port)
	switch {
	case a.Network == "bridge":
		res.Allowed, res.Source = true, "bridge"
		res.Note = `network = "bridge": the agent reaches any address directly, without the egress proxy; no rule applies`
		return res
	case a.Egress == nil:
		res.Source, res.Suggest = "none", suggest
		res.Note = "the agent has no egress: no egress block, and the run sets no egress_default"
		return res
	case a.Egress.Default:
		res.Source = "egress_default"
	default:
		res.Source = "egress"
	}
	v := a.Egress.Rules.CheckName(host, port)
	res.Allowed, res.Rule, res.Deny = v.Allowed, v.Rule, v.Deny
	switch {
	case v.Allowed:
		res.Note = "the proxy also resolves the name and refuses loopback, private, link-local, CGNAT, multicast and unspecified addresses that no IP or CIDR entry names; check resolves nothing"
	case v.Deny:
		res.Note = "deny wins over allow: remove the deny entry to allow it"
	default:
		res.Suggest = suggest
	}
	return res
}

func writeEgressCheck(w io.Writer, r egressCheck) {
	dest := hostPort(r.Host, r.Port)
	from := map[string]string{"egress": "its egress block", "egress_default": "the run's egress_default"}[r.Source]
	switch {
	case r.Source == "bridge":
		fmt.Fprintf(w, "allowed: %s reaches %s (%s)\n", r.Agent, dest, r.Note)
		return
	case r.Source == "none":
		fmt.Fprintf(w, "denied: %s may not reach %s: %s\n", r.Agent, dest, r.Note)
		fmt.Fprintf(w, "To allow it, give agent %q an egress block: egress { allow = [%q] }\n", r.Agent, r.Suggest)
		return
	case r.Allowed:
		fmt.Fprintf(w, "allowed: %s may reach %s: allow entry %q decides (%s)\n", r.Agent, dest, r.Rule, from)
		fmt.Fprintf(w, "Note: %s.\n", r.Note)
	case r.Deny:
		fmt.Fprintf(w, "denied: %s may not reach %s: deny entry %q decides (%s)\n", r.Agent, dest, r.Rule, from)
		fmt.Fprintf(w, "Note: %s.\n", r.Note)
	default:
		fmt.Fprintf(w, "denied: %s may not reach %s: no entry of %s matches (denied by default)\n", r.Agent, dest, from)
		if r.Source == "egress_default" {
			fmt.Fprintf(w, "To allow it, add %q to egress_default, or give agent %q an egress block of its own.\n", r.Suggest, r.Agent)
		} else {
			fmt.Fprintf(w, "To allow it, add to agent %q's egress allow list: %q\n", r.Agent, r.Suggest)
		}
	}
}
