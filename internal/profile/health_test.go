package profile

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/engine"
)

func cloneHealth(h *engine.Health) *engine.Health {
	if h == nil {
		return nil
	}
	c := *h
	c.Test = slices.Clone(h.Test)
	return &c
}

func TestBuildHealthCheck(t *testing.T) {
	s := Build("demo", sampleAgent())
	if s.Health == nil || !slices.Equal(s.Health.Test, []string{"/usr/local/bin/runner-agent", "health"}) ||
		s.Health.Interval <= 0 || s.Health.Timeout <= 0 || s.Health.Retries <= 0 || s.Health.Timeout > s.Health.Interval {
		t.Fatalf("health check %+v", s.Health)
	}
	// The check is part of the config hash: changing it replaces containers.
	s2 := s
	h := *s.Health
	h.Interval++
	s2.Health = &h
	if Hash(s2) == Hash(s) {
		t.Error("the config hash ignores the health check")
	}
}

// A container whose health check differs from the spec's is refused.
func TestCheckHealth(t *testing.T) {
	s := Build("demo", sampleAgent())
	for name, mutate := range map[string]func(*engine.Observed){
		"none":     func(o *engine.Observed) { o.Health = nil },
		"shell":    func(o *engine.Observed) { o.Health.Test = []string{"CMD-SHELL", "/usr/local/bin/runner-agent health"} },
		"argv":     func(o *engine.Observed) { o.Health.Test = []string{"/bin/true"} },
		"interval": func(o *engine.Observed) { o.Health.Interval = time.Hour },
		"timeout":  func(o *engine.Observed) { o.Health.Timeout = time.Hour },
		"start":    func(o *engine.Observed) { o.Health.StartPeriod = time.Hour },
		"retries":  func(o *engine.Observed) { o.Health.Retries = 1000 },
	} {
		o := observed(s)
		mutate(&o)
		vs := Check(s, o)
		if len(vs) != 1 || vs[0].Setting != "Healthcheck" || !strings.Contains(vs[0].Want, "runner-agent") {
			t.Errorf("%s: violations %v, want exactly one Healthcheck", name, vs)
		}
	}
}
