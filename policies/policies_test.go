package policies

import (
	"encoding/json"
	"testing"
)

// The content is checked against its generator in
// internal/profile/seccompgen; here only that the embed worked.
func TestSeccompEmbedded(t *testing.T) {
	var p struct {
		DefaultAction string            `json:"defaultAction"`
		Syscalls      []json.RawMessage `json:"syscalls"`
	}
	if err := json.Unmarshal(Seccomp, &p); err != nil {
		t.Fatalf("seccomp.json: %v", err)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" || len(p.Syscalls) == 0 {
		t.Fatalf("seccomp.json: defaultAction %q, %d rules", p.DefaultAction, len(p.Syscalls))
	}
}
