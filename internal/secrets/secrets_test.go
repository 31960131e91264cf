package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/config"
)

func TestStandInShape(t *testing.T) {
	k1, k2 := []byte("run-one-key-000000000000000000000"), []byte("run-two-key-000000000000000000000")
	for _, v := range []string{
		"sk-ant-api03-" + strings.Repeat("Ab9_-", 19) + "AA",
		"ghp_0123456789abcdefghijABCDEFGHIJ012345",
		"sk-proj-abc_def-ghi",
		"github_pat_11ABCDEFG0_abcdefghijklmnop",
		"plainvalue123",
		"x",
	} {
		s1 := StandIn(k1, "eng", "K", v)
		if len(s1) != len(v) {
			t.Errorf("stand-in for %q has length %d, want %d", v, len(s1), len(v))
		}
		if s1 == v {
			t.Errorf("stand-in equals the value %q", v)
		}
		for _, p := range knownPrefixes {
			if strings.HasPrefix(v, p) && len(v) > len(p) {
				if !strings.HasPrefix(s1, p) {
					t.Errorf("stand-in %q lost prefix %q", s1, p)
				}
				break
			}
		}
		if StandIn(k1, "eng", "K", v) != s1 {
			t.Error("stand-in is not stable for one run")
		}
		for _, other := range []string{StandIn(k2, "eng", "K", v), StandIn(k1, "rev", "K", v), StandIn(k1, "eng", "L", v)} {
			if len(v) > 4 && other == s1 {
				t.Errorf("two runs, agents or secrets share stand-in %q", s1)
			}
		}
	}
}

func sec(kind string, f func(*config.SecretSource)) config.Secret {
	s := config.Secret{Name: "K", File: "/run/secrets/k", Source: config.SecretSource{Kind: kind, Range: hcl.Range{Filename: "agents.hcl", Start: hcl.Pos{Line: 7, Column: 5}}}}
	f(&s.Source)
	return s
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("sk-ant-FILEVALUE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Resolver{LookupEnv: func(k string) (string, bool) {
		if k == "SET" {
			return "sk-ENVVALUE", true
		}
		return "", false
	}}
	good := []struct {
		s    config.Secret
		want string
	}{
		{sec(config.SourceEnv, func(s *config.SecretSource) { s.Env = "SET" }), "sk-ENVVALUE"},
		{sec(config.SourceFile, func(s *config.SecretSource) { s.File = key }), "sk-ant-FILEVALUE"}, // a 0600 key file
		{sec(config.SourceCommand, func(s *config.SecretSource) { s.Command = []string{"printf", "tok\\n"}; s.Timeout = 5 * time.Second }), "tok"},
		{sec(config.SourceValue, func(s *config.SecretSource) { s.Value = config.NewSensitive("v") }), "v"},
	}
	for _, g := range good {
		got, err := r.Value(ctx, "eng", g.s)
		if err != nil || got != g.want {
			t.Errorf("%s: got %q, %v; want %q", g.s.Source.Kind, got, err, g.want)
		}
	}
	bad := []struct {
		s    config.Secret
		want string
	}{
		{sec(config.SourceEnv, func(s *config.SecretSource) { s.Env = "UNSET" }), "UNSET is not set"},
		{sec(config.SourceFile, func(s *config.SecretSource) { s.File = filepath.Join(dir, "nope") }), "no such file"},
		{sec(config.SourceFile, func(s *config.SecretSource) { s.File = dir }), "not a regular file"},
		{sec(config.SourceCommand, func(s *config.SecretSource) {
			s.Command = []string{"sh", "-c", "echo denied >&2; exit 3"}
			s.Timeout = 5 * time.Second
		}), "failed (exit status 3): denied"},
		{sec(config.SourceCommand, func(s *config.SecretSource) { s.Command = []string{"sleep", "10"}; s.Timeout = 200 * time.Millisecond }), "did not finish within 200ms"},
		{sec(config.SourceCommand, func(s *config.SecretSource) { s.Command = []string{"no-such-program-xyz"}; s.Timeout = time.Second }), "not found in PATH"},
		{sec(config.SourceCommand, func(s *config.SecretSource) { s.Command = []string{"true"}; s.Timeout = time.Second }), "empty value"},
	}
	for _, b := range bad {
		start := time.Now()
		_, err := r.Value(ctx, "eng", b.s)
		var se *SourceError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), b.want) || !strings.HasPrefix(err.Error(), "agents.hcl:7:5: ") {
			t.Errorf("%s %v: error %v, want a SourceError at agents.hcl:7:5 saying %q", b.s.Source.Kind, b.s.Source.Command, err, b.want)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%v: the timeout did not stop it", b.s.Source.Command)
		}
	}
	// A value bound for a header may not carry a line break.
	inj := sec(config.SourceEnv, func(s *config.SecretSource) { s.Env = "SET" })
	inj.Inject = &config.Inject{Header: "X-Api-Key"}
	r.LookupEnv = func(string) (string, bool) { return "a\r\nX-Evil: 1", true }
	if _, err := r.Value(ctx, "eng", inj); err == nil || strings.Contains(err.Error(), "Evil") {
		t.Errorf("a value with CRLF for a header: %v", err)
	}
}

func TestBuildKeepsStandIn(t *testing.T) {
	key := []byte("k")
	cfg := &config.Config{Agents: []config.Agent{{Name: "eng", Secrets: []config.Secret{
		{Name: "K", Source: config.SecretSource{Kind: config.SourceFile}, Inject: &config.Inject{Hosts: []string{"api.x"}, Header: "X-Api-Key"}},
		{Name: "F", Source: config.SecretSource{Kind: config.SourceFile}, File: "/run/secrets/f"},
	}}}}
	now := time.Unix(1000, 0)
	s1 := Build(key, cfg, Values{"eng": {"K": "sk-old-value", "F": "file"}}, Store{}, now)
	s2 := Build(key, cfg, Values{"eng": {"K": "sk-new-longer-value", "F": "file"}}, s1, now.Add(time.Hour))
	if s1.Agents["eng"]["K"].StandIn == "" || s2.Agents["eng"]["K"].StandIn != s1.Agents["eng"]["K"].StandIn {
		t.Errorf("a rotated value changed the stand-in: %q -> %q", s1.Agents["eng"]["K"].StandIn, s2.Agents["eng"]["K"].StandIn)
	}
	if s2.Agents["eng"]["K"].Value != "sk-new-longer-value" || !s2.Agents["eng"]["F"].Updated.Equal(now) {
		t.Errorf("store after rotation: %+v", s2.Agents["eng"])
	}
	if s1.Equal(s2) || !s2.Equal(s2) {
		t.Error("Equal")
	}
}
