package docker

import (
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/runner-dev/runner/internal/engine"
)

func TestHealthRoundTrip(t *testing.T) {
	h := &engine.Health{Test: []string{"/usr/local/bin/runner-agent", "health"}, Interval: 15 * time.Second, Timeout: 5 * time.Second, StartPeriod: 15 * time.Second, Retries: 3}
	hc := healthConfig(h)
	if !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/runner-agent", "health"}) || hc.Interval != h.Interval || hc.Retries != 3 {
		t.Fatalf("healthConfig = %+v", hc)
	}
	c := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{Status: "running", Health: &container.Health{Status: "unhealthy"}}},
		Config:            &container.Config{Healthcheck: hc},
	}
	o := observe(c)
	if o.Health == nil || !slices.Equal(o.Health.Test, h.Test) || o.Health.Timeout != h.Timeout || o.Health.StartPeriod != h.StartPeriod || o.HealthStatus != "unhealthy" {
		t.Errorf("observed %+v %q", o.Health, o.HealthStatus)
	}
	if healthConfig(nil) != nil {
		t.Error("a spec without a check got one")
	}
}

// A shell-form check or "NONE" is not read as the argv it resembles.
func TestObserveHealthForms(t *testing.T) {
	for _, test := range [][]string{{"CMD-SHELL", "/usr/local/bin/runner-agent health"}, {"NONE"}, nil} {
		o := observe(container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{}, Config: &container.Config{Healthcheck: &container.HealthConfig{Test: test}}})
		switch {
		case len(test) == 0 || test[0] == "NONE":
			if o.Health != nil {
				t.Errorf("%q: observed a check %+v", test, o.Health)
			}
		case o.Health == nil || o.Health.Test[0] != "CMD-SHELL":
			t.Errorf("%q: observed %+v", test, o.Health)
		}
	}
}

func TestListHealth(t *testing.T) {
	for status, want := range map[string]string{
		"Up 2 minutes (healthy)":          "healthy",
		"Up 2 minutes (unhealthy)":        "unhealthy",
		"Up 3 seconds (health: starting)": "starting",
		"Up 2 minutes":                    "",
		"Exited (0) 3 seconds ago":        "",
	} {
		if got := listHealth(status); got != want {
			t.Errorf("listHealth(%q) = %q, want %q", status, got, want)
		}
	}
}
