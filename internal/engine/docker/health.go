package docker

import (
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/runner-dev/runner/internal/engine"
)

// healthConfig is the spec's health check as Docker's: an exec form
// ("CMD" and the argv), never "CMD-SHELL".
func healthConfig(h *engine.Health) *container.HealthConfig {
	if h == nil {
		return nil
	}
	return &container.HealthConfig{
		Test:        append([]string{"CMD"}, h.Test...),
		Interval:    h.Interval,
		Timeout:     h.Timeout,
		StartPeriod: h.StartPeriod,
		Retries:     h.Retries,
	}
}

// observeHealth reads a container's health check and its verdict back.
// A shell-form check keeps its "CMD-SHELL" marker in Test, so it can never
// equal an argv.
func observeHealth(o *engine.Observed, c container.InspectResponse) {
	if c.Config != nil && c.Config.Healthcheck != nil {
		hc := c.Config.Healthcheck
		if len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			test := hc.Test
			if test[0] == "CMD" {
				test = test[1:]
			}
			o.Health = &engine.Health{Test: test, Interval: hc.Interval, Timeout: hc.Timeout, StartPeriod: hc.StartPeriod, Retries: hc.Retries}
		}
	}
	if c.State != nil && c.State.Health != nil {
		o.HealthStatus = c.State.Health.Status
	}
}

// listHealth is the verdict in a container list's status text, e.g.
// "Up 2 minutes (healthy)" or "Up 3 seconds (health: starting)".
func listHealth(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return "healthy"
	case strings.HasSuffix(status, "(unhealthy)"):
		return "unhealthy"
	case strings.HasSuffix(status, "(health: starting)"):
		return "starting"
	}
	return ""
}
