package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"
)

const downloadSize = 256 << 20

// streamServer sends downloadSize bytes to each client after its first
// byte (through CONNECT, the client speaks first).
func streamServer(b *testing.B) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	chunk := make([]byte, 256<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var one [1]byte
				if _, err := io.ReadFull(c, one[:]); err != nil {
					return
				}
				if one[0] == 'e' { // echo mode, for setup latency
					c.Write(one[:])
					io.Copy(io.Discard, c)
					return
				}
				for sent := 0; sent < downloadSize; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func benchProxy(b *testing.B, addr netip.AddrPort) *harness {
	r := &fakeRules{allow: []string{"bench.example.com"}, named: map[netip.AddrPort]string{addr: addr.String()}}
	return newHarness(b, map[string]*fakeRules{"eng": r}, mapResolver{"bench.example.com": {lo}}, Limits{})
}

// viaProxy opens a CONNECT tunnel to bench.example.com.
func viaProxy(b *testing.B, h *harness, port uint16) net.Conn {
	c, err := net.Dial("unix", h.sockets["eng"])
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT bench.example.com:%d HTTP/1.1\r\n\r\n", port)
	br := bufio.NewReaderSize(c, 64)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 || br.Buffered() != 0 {
		b.Fatalf("CONNECT: %v %v", resp, err)
	}
	return c
}

func download(b *testing.B, c net.Conn, buf []byte) time.Duration {
	start := time.Now()
	c.Write([]byte{'d'})
	n := 0
	for n < downloadSize {
		k, err := c.Read(buf)
		n += k
		if err != nil {
			b.Fatalf("after %d bytes: %v", n, err)
		}
	}
	c.Close()
	return time.Since(start)
}

// BenchmarkDownload256MiB downloads 256 MiB on loopback directly and
// through a CONNECT tunnel, alternately, and reports both throughputs and
// their ratio (goal ≥ 0.8).
func BenchmarkDownload256MiB(b *testing.B) {
	addr := streamServer(b)
	h := benchProxy(b, addr)
	buf := make([]byte, 256<<10)
	var direct, proxied time.Duration
	b.SetBytes(2 * downloadSize)
	for b.Loop() {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		direct += download(b, c, buf)
		proxied += download(b, viaProxy(b, h, addr.Port()), buf)
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * downloadSize / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(direct), "direct-MiB/s")
	b.ReportMetric(mbps(proxied), "proxy-MiB/s")
	b.ReportMetric(direct.Seconds()/proxied.Seconds(), "ratio")
}

// BenchmarkConnectSetup measures the time from dialling to the first byte
// echoed back, directly and through CONNECT (rules check, resolution,
// dial, 200, the first bytes checked), and reports p50/p99 of each and the
// p50 the proxy adds (goal ≤ 1 ms).
func BenchmarkConnectSetup(b *testing.B) {
	addr := streamServer(b)
	h := benchProxy(b, addr)
	var direct, proxied []time.Duration
	var one [1]byte
	roundTrip := func(c net.Conn) {
		if _, err := c.Write([]byte{'e'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	for b.Loop() {
		start := time.Now()
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		roundTrip(c)
		direct = append(direct, time.Since(start))
		start = time.Now()
		roundTrip(viaProxy(b, h, addr.Port()))
		proxied = append(proxied, time.Since(start))
	}
	q := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(p*float64(len(d)-1))].Microseconds())
	}
	b.ReportMetric(q(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(q(direct, 0.99), "direct-p99-µs")
	b.ReportMetric(q(proxied, 0.5), "proxy-p50-µs")
	b.ReportMetric(q(proxied, 0.99), "proxy-p99-µs")
	b.ReportMetric(q(proxied, 0.5)-q(direct, 0.5), "added-p50-µs")
	b.ReportMetric(q(proxied, 0.99)-q(direct, 0.99), "added-p99-µs")
}
