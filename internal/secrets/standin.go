// Package secrets holds what runner knows of an agent's secrets on the
// host: it reads their sources (the operator's environment, a file, a
// command, a sensitive variable), keeps the values in the run's private
// secret store (0600, the only place on disk they are), and makes each
// proxied secret's stand-in: a value of the same shape that the agent's
// environment holds instead, worthless anywhere but as the key the egress
// proxy swaps for the real one.
package secrets

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"strings"
)

// knownPrefixes are the fixed heads of common API keys, longest first: a
// stand-in keeps them, so a client that checks a key's form (sk-ant-...,
// ghp_...) accepts it.
var knownPrefixes = []string{
	"sk-ant-api03-", "sk-ant-admin01-", "sk-ant-oat01-", "sk-ant-",
	"sk-proj-", "sk-svcacct-", "sk-admin-", "sk-",
	"github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
	"glpat-", "xoxb-", "xoxp-", "xapp-", "hf_", "npm_", "pypi-", "AKIA", "AIza",
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// StandIn derives agent's stand-in for secret name from the run's key: the
// value's known prefix, then as many bytes as the rest of the value, with
// '-' and '_' where the value has them and letters and digits elsewhere.
// Two runs (two keys), two agents or two secrets get different stand-ins;
// the value itself only gives the shape.
func StandIn(key []byte, agent, name, value string) string {
	prefix := ""
	for _, p := range knownPrefixes {
		if strings.HasPrefix(value, p) && len(value) > len(p) {
			prefix = p
			break
		}
	}
	body := value[len(prefix):]
	for attempt := uint32(0); ; attempt++ {
		s := derive(key, agent, name, body, attempt)
		if out := prefix + s; out != value {
			return out
		}
	}
}

func derive(key []byte, agent, name, body string, attempt uint32) string {
	var b strings.Builder
	b.WriteString("") // keep Builder non-nil for empty bodies
	var block []byte
	var ctr uint32
	for i := 0; i < len(body); i++ {
		if c := body[i]; c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		if len(block) == 0 {
			m := hmac.New(sha256.New, key)
			var n [8]byte
			binary.BigEndian.PutUint32(n[:4], attempt)
			binary.BigEndian.PutUint32(n[4:], ctr)
			m.Write([]byte("runner stand-in\x00" + agent + "\x00" + name + "\x00"))
			m.Write(n[:])
			block = m.Sum(nil)
			ctr++
		}
		// 256 % 62 bias is irrelevant: the stand-in is no secret.
		b.WriteByte(alnum[int(block[0])%len(alnum)])
		block = block[1:]
	}
	return b.String()
}
