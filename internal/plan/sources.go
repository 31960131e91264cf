package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// EncodeSources is the runner.mount-sources label value: each mount target
// and the host path its source resolved to, as a JSON object.
func EncodeSources(sources map[string]string) string {
	if len(sources) == 0 {
		return "{}"
	}
	b, err := json.Marshal(sources) // map keys come out sorted
	if err != nil {
		panic(err) // a map of strings always encodes
	}
	return string(b)
}

// DecodeSources reads a runner.mount-sources label; ok is false when the
// label is absent or not one runner wrote.
func DecodeSources(label string) (map[string]string, bool) {
	if label == "" {
		return nil, false
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(label), &m); err != nil {
		return nil, false
	}
	return m, true
}

// movedSources says which mounts, present at the last apply and now, have a
// source that resolves to a different host path; "" if none (or the
// container predates the label).
func movedSources(label string, now map[string]string) string {
	was, ok := DecodeSources(label)
	if !ok {
		return ""
	}
	var moved []string
	for _, target := range slices.Sorted(maps.Keys(now)) {
		if old, ok := was[target]; ok && old != now[target] {
			moved = append(moved, fmt.Sprintf("mount %s: source now resolves to %s, was %s at the last apply", target, now[target], old))
		}
	}
	return strings.Join(moved, "; ")
}
