package plan

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Change is one attribute that differs between what is deployed and what
// the file wants, as plan shows it: `~ memory: "256MiB" -> "512MiB"`.
type Change struct {
	// Attr names the attribute: "memory", "env.FOO", "mount /data",
	// "send_to", "checkins", "brief", "egress.allow", "require_rootless".
	Attr string `json:"attr"`
	// Op is "+" (added), "-" (removed) or "~" (changed).
	Op string `json:"op"`
	// Before and After are the values as plan prints them ("" when the
	// attribute is absent on that side). Sensitive values never appear:
	// they are Sensitive on both sides.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	// Replace says the change forces the container to be replaced; else
	// apply makes it in place (InPlace says how).
	Replace bool   `json:"forces_replacement"`
	InPlace string `json:"in_place,omitempty"`
	// Weakens, when set, says how the change weakens the agent's isolation
	// (plan marks the line with "!", apply asks before making it).
	Weakens string `json:"weakens,omitempty"`
}

// String is the change's line without indentation or marks.
func (c Change) String() string {
	switch c.Op {
	case "+":
		return fmt.Sprintf("+ %s: %s", c.Attr, c.After)
	case "-":
		return fmt.Sprintf("- %s: %s", c.Attr, c.Before)
	}
	return fmt.Sprintf("~ %s: %s -> %s", c.Attr, c.Before, c.After)
}

// DiffView compares the view a container was created from with the one the
// file wants now; every difference forces a replacement. agent names the
// agent in the explanations of weakening changes.
func DiffView(agent string, was, now View) []Change {
	var cs []Change
	add := func(attr, op, before, after, weakens string) {
		cs = append(cs, Change{Attr: attr, Op: op, Before: before, After: after, Replace: true, Weakens: weakens})
	}
	str := func(attr, a, b string) {
		if a != b {
			add(attr, "~", strconv.Quote(a), strconv.Quote(b), "")
		}
	}
	str("image", was.Image, now.Image)
	if was.Image == now.Image && was.ImageID != now.ImageID && was.ImageID != "" {
		add("image_id", "~", strconv.Quote(shortImage(was.ImageID)), strconv.Quote(shortImage(now.ImageID))+" (the image was rebuilt)", "")
	}
	if !slices.Equal(was.Command, now.Command) {
		add("command", "~", quoteList(was.Command), quoteList(now.Command), "")
	}
	for _, k := range slices.Sorted(maps.Keys(union(was.Env, now.Env))) {
		a, inA := was.Env[k]
		b, inB := now.Env[k]
		switch {
		case !inA:
			add("env."+k, "+", "", strconv.Quote(b), "")
		case !inB:
			add("env."+k, "-", strconv.Quote(a), "", "")
		case a != b:
			add("env."+k, "~", strconv.Quote(a), strconv.Quote(b), "")
		}
	}
	str("user", was.User, now.User)
	larger := func(attr string, a, b int64, render func(int64) string, why string) {
		if a == b {
			return
		}
		w := ""
		// 0 is "unlimited" for an engine; runner never sets it, but a
		// label that says so must not read as a smaller limit.
		if a != 0 && (b > a || b == 0) {
			w = why
		}
		add(attr, "~", strconv.Quote(render(a)), strconv.Quote(render(b)), w)
	}
	larger("memory", was.Memory, now.Memory, Bytes, agent+" may use more memory (a larger memory limit)")
	larger("cpus", was.NanoCPUs, now.NanoCPUs, CPUs, agent+" may use more CPU time (a larger cpus limit)")
	larger("pids", was.Pids, now.Pids, func(n int64) string { return strconv.FormatInt(n, 10) }, agent+" may run more processes (a larger pids limit: a fork bomb goes further)")
	if was.Network != now.Network {
		w := ""
		if now.Network != "none" {
			w = agent + " can reach any address directly (the internet, the host's services, cloud metadata), bypassing the egress proxy"
		}
		add("network", "~", strconv.Quote(was.Network), strconv.Quote(now.Network), w)
	}
	str("workdir", was.Workdir, now.Workdir)
	larger("tmp_size", was.TmpSize, now.TmpSize, Bytes, agent+"'s /tmp may hold more (it is memory)")
	larger("home_size", was.HomeSize, now.HomeSize, Bytes, agent+"'s home may hold more (it is memory)")
	str("restart", was.Restart, now.Restart)
	if was.MaxRestarts != now.MaxRestarts {
		add("max_restarts", "~", strconv.Itoa(was.MaxRestarts), strconv.Itoa(now.MaxRestarts), "")
	}
	cs = append(cs, diffMounts(agent, was.Mounts, now.Mounts)...)
	for _, k := range slices.Sorted(maps.Keys(union(was.Secrets, now.Secrets))) {
		a, inA := was.Secrets[k]
		b, inB := now.Secrets[k]
		switch {
		case !inA:
			add("secret."+k, "+", "", strconv.Quote(b), fmt.Sprintf("%s gains the credential %s", agent, k))
		case !inB:
			add("secret."+k, "-", strconv.Quote(a), "", "")
		case a != b:
			add("secret."+k, "~", strconv.Quote(a), strconv.Quote(b), "")
		}
	}
	return cs
}

func union(a, b map[string]string) map[string]string {
	m := maps.Clone(a)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, b)
	return m
}

func shortImage(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 && len(id) > i+13 {
		return id[:i+13]
	}
	return id
}

func mountText(m MountView) string {
	mode := "read-only"
	if !m.ReadOnly {
		mode = "read-write"
	}
	return fmt.Sprintf("%s (%s)", strconv.Quote(m.Source), mode)
}

// diffMounts compares mounts by target: one added, removed, or with a
// different source or mode.
func diffMounts(agent string, was, now []MountView) []Change {
	old := map[string]MountView{}
	for _, m := range was {
		old[m.Target] = m
	}
	var cs []Change
	seen := map[string]bool{}
	for _, m := range now {
		seen[m.Target] = true
		attr := "mount " + m.Target
		o, ok := old[m.Target]
		switch {
		case !ok:
			w := ""
			if !m.ReadOnly {
				w = fmt.Sprintf("a new read-write mount: %s can change %s on the host", agent, m.Source)
			}
			cs = append(cs, Change{Attr: attr, Op: "+", After: mountText(m), Replace: true, Weakens: w})
		case o != m:
			w := ""
			switch {
			case o.ReadOnly && !m.ReadOnly:
				w = fmt.Sprintf("read-only -> read-write: %s can change %s on the host", agent, m.Source)
			case !m.ReadOnly && o.Source != m.Source:
				w = fmt.Sprintf("a read-write mount of another host path: %s can change %s on the host", agent, m.Source)
			}
			cs = append(cs, Change{Attr: attr, Op: "~", Before: mountText(o), After: mountText(m), Replace: true, Weakens: w})
		}
	}
	for _, m := range was {
		if !seen[m.Target] {
			cs = append(cs, Change{Attr: "mount " + m.Target, Op: "-", Before: mountText(m), Replace: true})
		}
	}
	return cs
}

// DiffInPlace compares an agent's settings that live in the run's state
// (relay ACL, check-ins, brief) with what the last apply wrote there; apply
// changes them without touching the container.
func DiffInPlace(agent string, was, now InPlace) []Change {
	var cs []Change
	if !slices.Equal(was.SendTo, now.SendTo) {
		added, _ := setDiff(was.SendTo, now.SendTo)
		w := ""
		if len(added) > 0 {
			w = fmt.Sprintf("%s may now message %s", agent, strings.Join(quotedAll(added), ", "))
		}
		cs = append(cs, Change{Attr: "send_to", Op: "~", Before: quoteList(was.SendTo), After: quoteList(now.SendTo),
			InPlace: "the relay reloads its ACL", Weakens: w})
	}
	if !slices.Equal(was.Checkins, now.Checkins) {
		added, removed := setDiff(was.Checkins, now.Checkins)
		for _, c := range added {
			cs = append(cs, Change{Attr: "checkin", Op: "+", After: c, InPlace: "the relay reloads its check-ins"})
		}
		for _, c := range removed {
			cs = append(cs, Change{Attr: "checkin", Op: "-", Before: c, InPlace: "the relay reloads its check-ins"})
		}
	}
	if was.BriefSHA != now.BriefSHA {
		c := Change{Attr: "brief", Op: "~", Before: briefText(was.BriefSHA), After: briefText(now.BriefSHA), InPlace: "apply sends the new brief to the running agent"}
		if now.BriefSHA == "" {
			c.InPlace = "nothing is sent; the agent keeps the brief it has"
		}
		cs = append(cs, c)
	}
	return cs
}

func briefText(sha string) string {
	if sha == "" {
		return "(none)"
	}
	return "(sha256 " + sha[:min(12, len(sha))] + ")"
}

func quotedAll(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return q
}

// EgressChanges are an egress change as Changes, each wider rule marked
// as weakening (an allow entry added, a deny entry removed).
func EgressChanges(agent string, e EgressChange) []Change {
	var cs []Change
	const how = "the egress proxy reloads its rules"
	for _, s := range e.AllowAdded {
		cs = append(cs, Change{Attr: "egress.allow", Op: "+", After: strconv.Quote(s), InPlace: how,
			Weakens: fmt.Sprintf("%s can reach %s through the egress proxy", agent, s)})
	}
	for _, s := range e.AllowRemoved {
		cs = append(cs, Change{Attr: "egress.allow", Op: "-", Before: strconv.Quote(s), InPlace: how})
	}
	for _, s := range e.DenyAdded {
		cs = append(cs, Change{Attr: "egress.deny", Op: "+", After: strconv.Quote(s), InPlace: how})
	}
	for _, s := range e.DenyRemoved {
		cs = append(cs, Change{Attr: "egress.deny", Op: "-", Before: strconv.Quote(s), InPlace: how,
			Weakens: fmt.Sprintf("%s is no longer denied %s", agent, s)})
	}
	return cs
}

// RunView is the run block's settings that weaken every agent when
// relaxed; apply records them in the run's state.
type RunView struct {
	RequireRootless  bool     `json:"require_rootless"`
	AcceptUnenforced []string `json:"accept_unenforced,omitempty"`
}

// DiffRun compares the run settings last applied with the file's.
func DiffRun(was, now RunView) []Change {
	var cs []Change
	if was.RequireRootless != now.RequireRootless {
		c := Change{Attr: "require_rootless", Op: "~", Before: strconv.FormatBool(was.RequireRootless), After: strconv.FormatBool(now.RequireRootless),
			InPlace: "checked by every apply"}
		if !now.RequireRootless {
			c.Weakens = "agents may run on an engine where a container escape is host root"
		}
		cs = append(cs, c)
	}
	added, removed := setDiff(was.AcceptUnenforced, now.AcceptUnenforced)
	for _, l := range added {
		cs = append(cs, Change{Attr: "accept_unenforced", Op: "+", After: strconv.Quote(l), InPlace: "checked by every apply",
			Weakens: fmt.Sprintf("agents may start on an engine that does not enforce the %s limit", l)})
	}
	for _, l := range removed {
		cs = append(cs, Change{Attr: "accept_unenforced", Op: "-", Before: strconv.Quote(l), InPlace: "checked by every apply"})
	}
	return cs
}

// weakening returns the changes among cs that weaken isolation.
func weakening(cs []Change) []Change {
	var w []Change
	for _, c := range cs {
		if c.Weakens != "" {
			w = append(w, c)
		}
	}
	return w
}

// replacing names the attributes among cs that force a replacement.
func replacing(cs []Change) []string {
	var names []string
	for _, c := range cs {
		if c.Replace && !slices.Contains(names, c.Attr) {
			names = append(names, c.Attr)
		}
	}
	return names
}
