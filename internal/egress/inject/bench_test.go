package inject_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkInjectedRequest reports the latency an injected request adds
// over a request through a plain CONNECT tunnel to the same loopback
// server: both on a warm connection (keep-alive), p50 and p99, side by
// side. The first request of a connection also pays a TLS handshake with
// the run CA's certificate; BenchmarkInjectedNewConn reports that.
func BenchmarkInjectedRequest(b *testing.B) {
	e := newEnv(b, oneBinding("X-Api-Key", ""))
	for _, c := range []struct{ name, host string }{{"tunnel", "other.example.com"}, {"injected", "api.example.com"}} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			e.get(c.host, "x-api-key", standIn) // warm the connection
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				req, _ := http.NewRequest("GET", e.url(c.host), nil)
				req.Header.Set("x-api-key", standIn)
				resp, err := e.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
			}
			report(b, lat)
		})
	}
}

func BenchmarkInjectedNewConn(b *testing.B) {
	e := newEnv(b, oneBinding("X-Api-Key", ""))
	tr := e.client.Transport.(*http.Transport)
	for _, c := range []struct{ name, host string }{{"tunnel", "other.example.com"}, {"injected", "api.example.com"}} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				tr.CloseIdleConnections()
				start := time.Now()
				_, body := e.get(c.host, "x-api-key", standIn)
				if !strings.HasPrefix(body, "hello") {
					b.Fatal(body)
				}
				lat = append(lat, time.Since(start))
			}
			report(b, lat)
		})
	}
}

func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(p(0.50), "p50-µs")
	b.ReportMetric(p(0.99), "p99-µs")
}
