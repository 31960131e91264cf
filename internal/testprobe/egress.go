package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Probes of the egress path as an agent (or a hostile agent) would use it:
// the forwarder on 127.0.0.1:3128 that runner-agent serves in the
// container, and everything else that might get out.

const egressProxy = "127.0.0.1:3128"

// proxySend writes raw (a Go-quoted string, so \r\n can be given) to the
// proxy and returns what it answered, at most 4 KiB in 10 s.
func proxySend(quoted string) string {
	raw, err := strconv.Unquote(`"` + quoted + `"`)
	if err != nil {
		return "bad argument: " + err.Error()
	}
	return proxyRaw(raw)
}

func proxyRaw(raw string) string {
	c, err := net.DialTimeout("tcp", egressProxy, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	b, _ := io.ReadAll(io.LimitReader(c, 4096))
	return string(b)
}

// TunnelResult is what proxy-tls saw.
type TunnelResult struct {
	Connect   string `json:"connect"`   // the proxy's status line
	Handshake string `json:"handshake"` // "ok" or the TLS error
	Ended     string `json:"ended"`     // hold: how the open tunnel ended
	HeldMS    int64  `json:"held_ms"`   // hold: how long it stayed open
}

// proxyTLS opens a CONNECT tunnel to hostport and a TLS handshake inside
// it naming sni (the certificate is not checked: the proxy's answer is
// what is tested). With hold > 0 it then keeps the tunnel open, reading,
// until it ends or hold passes; the file mark is created once it is open.
func proxyTLS(hostport, sni string, hold time.Duration, mark string) TunnelResult {
	var r TunnelResult
	c, err := net.DialTimeout("tcp", egressProxy, 5*time.Second)
	if err != nil {
		r.Connect = "dial: " + err.Error()
		return r
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostport, hostport)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	r.Connect = strings.TrimSpace(line)
	if err != nil || !strings.Contains(line, " 200 ") {
		return r
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	r.Handshake = errString(tc.Handshake())
	if r.Handshake != "ok" || hold <= 0 {
		return r
	}
	start := time.Now()
	c.SetDeadline(start.Add(hold))
	if mark != "" {
		os.WriteFile(mark, []byte("open\n"), 0o644)
	}
	_, err = tc.Read(make([]byte, 1))
	r.Ended, r.HeldMS = errString(err), time.Since(start).Milliseconds()
	return r
}

// udpDNS sends one DNS query for example.com to addr over UDP and waits
// for an answer.
func udpDNS(addr string) string {
	c, err := net.DialTimeout("udp", addr, 3*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}
	if _, err := c.Write(q); err != nil {
		return err.Error()
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 512))
	return errString(err)
}

// icmpEcho sends one echo request to addr from an unprivileged ICMP socket
// (or a raw one, if that is allowed) and waits for the reply.
func icmpEcho(addr string) string {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return "not an IPv4 address"
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, syscall.IPPROTO_ICMP)
	if err != nil {
		if fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP); err != nil {
			return "socket: " + err.Error()
		}
	}
	defer syscall.Close(fd)
	echo := []byte{8, 0, 0xf7, 0xfe, 0, 1, 0, 0} // type 8, checksum of this header
	sa := &syscall.SockaddrInet4{Addr: [4]byte(ip)}
	if err := syscall.Sendto(fd, echo, 0, sa); err != nil {
		return "sendto: " + err.Error()
	}
	tv := syscall.Timeval{Sec: 3}
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	if _, _, err := syscall.Recvfrom(fd, make([]byte, 512), 0); err != nil {
		return "recvfrom: " + err.Error()
	}
	return "ok"
}

// EgressHostile is what egress-hostile did and what it got back.
type EgressHostile struct {
	Garbage   []string `json:"garbage"`   // first line of each answer
	Oversized string   `json:"oversized"` // first line of the answer to a 16 KiB head
	Connects  int      `json:"connects"`  // CONNECTs sent
	Answered  int      `json:"answered"`  // of those, answered with an HTTP status line
	Held      int      `json:"held"`      // half-written requests held open
}

// egressHostile throws garbage, an oversized head and n CONNECTs (from 32
// workers) at the proxy, then opens held half-written requests, creates
// mark and keeps them open for hold.
func egressHostile(n, held int, hold time.Duration, mark string) EgressHostile {
	var r EgressHostile
	first := func(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }
	for _, g := range []string{"\x00\xff\x16\x03\r\n\r\n", "CONNECT\r\n\r\n", "GET /x HTTP/1.1\r\n\r\n", "CONNECT a:1:2 HTTP/1.1\r\n\r\n"} {
		r.Garbage = append(r.Garbage, first(proxyRaw(g)))
	}
	big := "GET http://allowed.test/ HTTP/1.1\r\nX: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"
	r.Oversized = first(proxyRaw(big))
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 32 {
		wg.Go(func() {
			for range jobs {
				c, err := net.DialTimeout("tcp", egressProxy, 5*time.Second)
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "CONNECT flood.test:443 HTTP/1.1\r\n\r\n")
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Close()
				mu.Lock()
				r.Connects++
				if strings.HasPrefix(line, "HTTP/1.1 ") {
					r.Answered++
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var open []net.Conn
	for range held {
		c, err := net.DialTimeout("tcp", egressProxy, 5*time.Second)
		if err != nil {
			break
		}
		io.WriteString(c, "CONNECT allowed.te")
		open = append(open, c)
	}
	r.Held = len(open)
	if mark != "" {
		os.WriteFile(mark, []byte("held\n"), 0o644)
	}
	time.Sleep(hold)
	for _, c := range open {
		c.Close()
	}
	return r
}
