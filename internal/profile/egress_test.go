package profile

import (
	"reflect"
	"testing"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/rules"
)

// Egress rules are applied in place by the proxy, so they must not reach
// the container's spec nor its config hash: a change to them would replace
// the container.
func TestEgressRulesNotInSpec(t *testing.T) {
	a := config.Agent{Name: "eng", Command: []string{"claude"}, User: "40000:40000"}
	egress := func(allow ...string) *config.Egress {
		r, err := rules.Compile(allow, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &config.Egress{Allow: allow, Rules: r}
	}
	a.Egress = egress("api.anthropic.com")
	one := Build("r", a)
	a.Egress = egress("api.anthropic.com", "pypi.org", "10.0.0.0/8:5432")
	two := Build("r", a)
	if Hash(one) != Hash(two) || !reflect.DeepEqual(one, two) {
		t.Errorf("changing the egress rules changed the spec:\n%+v\n%+v", one, two)
	}
}
