package plan

import (
	"slices"
	"strconv"
	"strings"

	"github.com/runner-dev/runner/internal/egress/rules"
)

// EgressChange is how an agent's egress lists differ from the ones the last
// apply wrote to the run's rules file. The rules live on the host (the
// run's private/egress.json), not in the container's spec or labels, so a
// change to them is applied in place: the proxy reloads the file, the
// container stays.
type EgressChange struct {
	AllowAdded, AllowRemoved []string
	DenyAdded, DenyRemoved   []string
}

// DiffEgress compares the lists last applied with the wanted ones; nil
// means no egress. Lists are compared as sets of entries as written: a
// reordering is not a change (apply still writes the new order).
func DiffEgress(applied, want *rules.Entries) EgressChange {
	var was, now rules.Entries
	if applied != nil {
		was = *applied
	}
	if want != nil {
		now = *want
	}
	var c EgressChange
	c.AllowAdded, c.AllowRemoved = setDiff(was.Allow, now.Allow)
	c.DenyAdded, c.DenyRemoved = setDiff(was.Deny, now.Deny)
	return c
}

// setDiff returns what is in now and not in was, and the reverse, each in
// the order of its list.
func setDiff(was, now []string) (added, removed []string) {
	for _, s := range now {
		if !slices.Contains(was, s) && !slices.Contains(added, s) {
			added = append(added, s)
		}
	}
	for _, s := range was {
		if !slices.Contains(now, s) && !slices.Contains(removed, s) {
			removed = append(removed, s)
		}
	}
	return added, removed
}

// Empty reports whether nothing changed.
func (c EgressChange) Empty() bool {
	return len(c.AllowAdded)+len(c.AllowRemoved)+len(c.DenyAdded)+len(c.DenyRemoved) == 0
}

// String is the change as plan shows it:
// `egress.allow: + "pypi.org", - "x.org"; egress.deny: + "gist.github.com"`.
func (c EgressChange) String() string {
	var parts []string
	for _, l := range []struct {
		name           string
		added, removed []string
	}{{"egress.allow", c.AllowAdded, c.AllowRemoved}, {"egress.deny", c.DenyAdded, c.DenyRemoved}} {
		var items []string
		for _, s := range l.added {
			items = append(items, "+ "+strconv.Quote(s))
		}
		for _, s := range l.removed {
			items = append(items, "- "+strconv.Quote(s))
		}
		if len(items) > 0 {
			parts = append(parts, l.name+": "+strings.Join(items, ", "))
		}
	}
	return strings.Join(parts, "; ")
}
