package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// team is a hand-built Config: MayMessage and Peers work on any Config, not
// only on loaded ones, and do not rely on Agents being sorted.
func team() *Config {
	return &Config{Agents: []Agent{
		{Name: "pm", SendTo: []string{"eng-*", "qa", Operator}},
		{Name: "eng-1", SendTo: []string{"eng-*", "pm"}},
		{Name: "eng-2", SendTo: []string{"eng-?", "eng-2"}},
		{Name: "eng-10", SendTo: []string{"*"}},
		{Name: "qa", SendTo: []string{"[ep][nm]*", "q?"}},
		{Name: "loner"},
	}}
}

func TestMayMessage(t *testing.T) {
	c := team()
	for _, tc := range []struct {
		from, to string
		want     bool
	}{
		{"pm", "eng-1", true},
		{"pm", "eng-10", true},
		{"pm", "qa", true},
		{"pm", Operator, true}, // listed literally
		{"pm", "pm", false},    // not listed
		{"pm", "loner", false},
		{"eng-1", "eng-2", true},
		{"eng-1", "eng-1", false}, // a glob does not match the sender
		{"eng-1", "pm", true},
		{"eng-1", Operator, false},
		{"eng-1", "qa", false},
		{"eng-2", "eng-1", true},
		{"eng-2", "eng-10", false}, // ? is one character
		{"eng-2", "eng-2", true},   // named literally: may message itself
		{"eng-10", "pm", true},
		{"eng-10", "loner", true},
		{"eng-10", "eng-10", false}, // "*" does not match the sender...
		{"eng-10", Operator, false}, // ...nor the operator
		{"qa", "pm", true},
		{"qa", "eng-2", true},
		{"qa", "qa", false}, // "q?" is a glob, not the literal name
		{"loner", "pm", false},
		{Operator, "loner", true}, // the operator may message every agent
		{Operator, Operator, false},
		{"nobody", "pm", false}, // unknown sender
		{"pm", "eng-3", false},  // matches eng-*, but is not an agent
		{"eng-10", "runner", false},
		{"eng-10", "", false},
	} {
		if got := c.MayMessage(tc.from, tc.to); got != tc.want {
			t.Errorf("MayMessage(%q, %q) = %t; want %t", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestPeers(t *testing.T) {
	c := team()
	for agent, want := range map[string][]string{
		"pm":     {"eng-1", "eng-10", "eng-2", Operator, "qa"},
		"eng-1":  {"eng-10", "eng-2", "pm"},
		"eng-2":  {"eng-1", "eng-2"},
		"eng-10": {"eng-1", "eng-2", "loner", "pm", "qa"},
		"qa":     {"eng-1", "eng-10", "eng-2", "pm"},
		"loner":  {},
		"nobody": {},
		Operator: {"eng-1", "eng-10", "eng-2", "loner", "pm", "qa"},
	} {
		got := c.Peers(agent)
		if got == nil || !slices.Equal(got, want) {
			t.Errorf("Peers(%q) = %#v; want %#v", agent, got, want)
		}
		for _, to := range got {
			if !c.MayMessage(agent, to) {
				t.Errorf("Peers(%q) has %q, but MayMessage says no", agent, to)
			}
		}
	}
}

// TestPeersCounted loads counted agents, whose send_to uses the same glob in
// every instance and count.index in one entry.
func TestPeersCounted(t *testing.T) {
	hostEnv(t)
	path := filepath.Join(t.TempDir(), "agents.hcl")
	src := `run "r" {}
agent "eng" {
  count   = 3
  command = ["true"]
  # each engineer reaches the others and, by name, the next one's reviewer
  send_to = ["eng-*", "rev-${count.index + 1}"]
}
agent "rev" {
  count   = 3
  command = ["true"]
  send_to = ["rev-${count.index + 1}", "operator"]
}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(path, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for agent, want := range map[string][]string{
		"eng-1": {"eng-2", "eng-3", "rev-1"},
		"eng-2": {"eng-1", "eng-3", "rev-2"},
		"eng-3": {"eng-1", "eng-2", "rev-3"},
		"rev-1": {Operator, "rev-1"},
		"rev-3": {Operator, "rev-3"},
	} {
		if got := cfg.Peers(agent); !slices.Equal(got, want) {
			t.Errorf("Peers(%q) = %q; want %q", agent, got, want)
		}
	}
	if got := cfg.Agents[0].SendTo; !slices.Equal(got, []string{"eng-*", "rev-1"}) {
		t.Errorf("eng-1 SendTo = %q; want the patterns as written, after count expansion", got)
	}
}

func TestCheckPattern(t *testing.T) {
	for _, p := range []string{"pm", "eng-1", "eng-*", "*", "?", "e?g-[0-9]", "[abc]*", "operator", "a-very-long-agent-name-that-is-forty-one", "*]"} {
		if problem := checkPattern(p); problem != "" {
			t.Errorf("checkPattern(%q) = %q; want it accepted", p, problem)
		}
	}
	for _, p := range []string{"", "Eng", "eng_1", "1st", "-a", "a/b", "eng-[", "[]", "[^a]", "[!a]", `eng-\*`, "eng *", "a-very-long-agent-name-that-is-forty-one1", "é"} {
		if checkPattern(p) == "" {
			t.Errorf("checkPattern(%q) accepted it; want an error", p)
		}
	}
}

func TestCheckText(t *testing.T) {
	for v, want := range map[string]string{
		"hello":                             "",
		strings.Repeat("é", MaxMessage/2):   "", // exactly the limit, in bytes
		strings.Repeat("a", MaxMessage):     "",
		"":                                  "Empty brief",
		strings.Repeat("a", MaxMessage+1):   "Brief too long",
		strings.Repeat("é", MaxMessage/2+1): "Brief too long",
		"a\xffb":                            "Brief is not UTF-8",
		"a\x00b":                            "NUL byte in brief",
	} {
		if got, _ := checkText("brief", emptyBrief, v); got != want {
			t.Errorf("checkText(%.20q) = %q; want %q", v, got, want)
		}
	}
}
