package main

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

// ownToken is this container's relay credential.
func ownToken() string {
	b, _ := os.ReadFile("/run/secrets/runner-credential")
	return strings.TrimSpace(string(b))
}

// preLoginFlood keeps n connections to the relay socket open that never say
// hello, for the given time: each one the relay closes is dialled again on
// the next sweep. One goroutine does it all, so the container's pids limit
// (threads count) is not what stops it. It reports how many dials got
// through and how many were refused outright.
func preLoginFlood(n int, d time.Duration) map[string]any {
	deadline := time.Now().Add(d)
	conns := make([]net.Conn, n)
	buf := make([]byte, 1)
	dials, refused := 0, 0
	for time.Now().Before(deadline) {
		for i, c := range conns {
			if c == nil {
				c, err := net.DialTimeout("unix", relaySock, time.Second)
				if err != nil {
					refused++
					continue
				}
				dials++
				conns[i] = c
				continue
			}
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(buf); errors.Is(err, os.ErrDeadlineExceeded) {
				continue // still held open
			}
			c.Close() // the relay hung up: dial again
			conns[i] = nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return map[string]any{"dials": dials, "refused": refused}
}

// login dials the relay socket with token and says what happened.
func login(token string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relaySock, token)
	if err == nil {
		c.Close()
	}
	return errString(err)
}

// fillQueue sends to "to" as fast as the rate limit allows until the relay
// answers anything but ok or rate_limited (queue_full, when the test is
// right), and reports how many it accepted and the answer that stopped it.
func fillQueue(to string) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relaySock, ownToken())
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	defer c.Close()
	accepted := 0
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && accepted < 5000; {
		_, err := c.Send(to, "filling your queue")
		switch {
		case err == nil:
			accepted++
		case strings.Contains(err.Error(), "rate_limited"):
			time.Sleep(50 * time.Millisecond)
		default:
			return map[string]any{"accepted": accepted, "error": err.Error()}
		}
	}
	return map[string]any{"accepted": accepted, "error": "none"}
}

// scheduleFlood asks for 1s check-ins to itself as fast as the relay takes
// them, for d, and counts what it accepted and refused.
func scheduleFlood(d time.Duration) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relaySock, ownToken())
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	defer c.Close()
	accepted, refused := 0, 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		_, _, err := c.Schedule(time.Second, "wake up")
		switch {
		case err == nil:
			accepted++
		case strings.Contains(err.Error(), "too_many_schedules"):
			refused++
			time.Sleep(50 * time.Millisecond)
		case strings.Contains(err.Error(), "rate_limited"):
			time.Sleep(50 * time.Millisecond)
		default:
			return map[string]any{"accepted": accepted, "refused": refused, "error": err.Error()}
		}
	}
	return map[string]any{"accepted": accepted, "refused": refused}
}
