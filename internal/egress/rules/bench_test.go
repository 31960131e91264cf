package rules

import (
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkCheckName: the proxy asks once per connection; with a long list
// (200 entries, the match last) it must stay far below the proxy's 1 ms
// setup budget.
func BenchmarkCheckName(b *testing.B) {
	var allow []string
	for i := range 199 {
		allow = append(allow, fmt.Sprintf("host%d.example.com", i), fmt.Sprintf("10.%d.0.0/16:5432", i%200))
	}
	allow = append(allow, "*.githubusercontent.com")
	r, err := Compile(allow, []string{"gist.githubusercontent.com"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("name", func(b *testing.B) {
		for b.Loop() {
			if !r.CheckName("Raw.GitHubUserContent.com.", 443).Allowed {
				b.Fatal("denied")
			}
		}
	})
	ip := netip.MustParseAddr("10.198.3.4")
	b.Run("addr", func(b *testing.B) {
		for b.Loop() {
			if _, ok := r.NamedAddr(ip, 5432); !ok {
				b.Fatal("not named")
			}
		}
	})
}
