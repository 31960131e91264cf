// Command testprobe is built by the integration tests and mounted read-only
// into agent containers, so invariants are checked from inside the container
// by the kernel's own answers, without relying on tools in the image.
// It prints one JSON document and exits 0; the test decides what is wrong.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/relay"
)

// Proc is the security-relevant part of /proc/PID/status.
type Proc struct {
	PID        int    `json:"pid"`
	PPID       int    `json:"ppid"`
	Name       string `json:"name"`
	Uid        string `json:"uid"`
	CapEff     string `json:"cap_eff"`
	CapPrm     string `json:"cap_prm"`
	CapBnd     string `json:"cap_bnd"`
	CapAmb     string `json:"cap_amb"`
	CapInh     string `json:"cap_inh"`
	NoNewPrivs string `json:"no_new_privs"`
	Seccomp    string `json:"seccomp"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testprobe procs|touch PATH|mount|unshare|fork N|netifs|uidmap|sleep")
		os.Exit(2)
	}
	var out any
	switch os.Args[1] {
	case "procs":
		out = procs()
	case "self":
		out = self()
	case "ls": // DIR: the names in it (getdents; gVisor's statx trips ls)
		ents, err := os.ReadDir(os.Args[2])
		if err != nil {
			out = err.Error()
			break
		}
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		out = names
	case "readonly": // PATH: is its filesystem mounted read-only (statfs)?
		var st unix.Statfs_t
		if err := unix.Statfs(os.Args[2], &st); err != nil {
			out = err.Error()
			break
		}
		out = st.Flags&unix.ST_RDONLY != 0
	case "touch":
		f, err := os.OpenFile(os.Args[2], os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
		}
		out = errString(err)
	case "mount":
		out = errString(unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	case "unshare":
		out = map[string]string{
			"user":  errString(unix.Unshare(unix.CLONE_NEWUSER)),
			"mount": errString(unix.Unshare(unix.CLONE_NEWNS)),
			"net":   errString(unix.Unshare(unix.CLONE_NEWNET)),
		}
	case "fork":
		n, _ := strconv.Atoi(os.Args[2])
		out = fork(n)
	case "netifs":
		ifs, err := net.Interfaces()
		if err != nil {
			out = err.Error()
			break
		}
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		out = names
	case "uidmap":
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			out = err.Error()
			break
		}
		out = strings.Fields(string(b))
	case "sleep":
		time.Sleep(time.Hour)
	case "reach":
		out = reach(os.Args[2:])
	case "syscalls":
		n, _ := strconv.Atoi(os.Args[2])
		out = syscalls(n)
	case "syscall1":
		n, _ := strconv.Atoi(os.Args[2])
		syscall1(n)
	case "cmdlines":
		out = cmdlines()
	case "hijack": // MATCH STDOUT STDERR kill|cont
		out = hijack(os.Args[2], os.Args[3], os.Args[4], os.Args[5] == "kill", 30*time.Second)
	case "http-get": // URL [CA_PEM]
		ca := ""
		if len(os.Args) > 3 {
			ca = os.Args[3]
		}
		out = httpGet(os.Args[2], ca)
	case "http-header": // URL HEADER ENVVAR|=VALUE [CA_PEM]
		ca := ""
		if len(os.Args) > 5 {
			ca = os.Args[5]
		}
		out = httpHeader(os.Args[2], os.Args[3], os.Args[4], ca)
	case "environ":
		out = environs()
	case "secret-file": // PATH
		out = secretFile(os.Args[2])
	case "tcp-dial": // HOST:PORT
		out = tcpDial(os.Args[2])
	case "proxy-send": // QUOTED_BYTES
		out = proxySend(os.Args[2])
	case "proxy-tls": // HOST:PORT SNI [HOLD_SECONDS MARK]
		var hold time.Duration
		mark := ""
		if len(os.Args) > 5 {
			secs, _ := strconv.Atoi(os.Args[4])
			hold, mark = time.Duration(secs)*time.Second, os.Args[5]
		}
		out = proxyTLS(os.Args[2], os.Args[3], hold, mark)
	case "udp-dns": // HOST:PORT
		out = udpDNS(os.Args[2])
	case "icmp": // IPV4
		out = icmpEcho(os.Args[2])
	case "egress-hostile": // CONNECTS HELD HOLD_SECONDS MARK
		n, _ := strconv.Atoi(os.Args[2])
		held, _ := strconv.Atoi(os.Args[3])
		secs, _ := strconv.Atoi(os.Args[4])
		out = egressHostile(n, held, time.Duration(secs)*time.Second, os.Args[5])
	case "relay-forge":
		out = forge()
	case "relay-hostile":
		out = hostile()
	case "relay-flood": // N SECONDS
		n, _ := strconv.Atoi(os.Args[2])
		secs, _ := strconv.Atoi(os.Args[3])
		out = preLoginFlood(n, time.Duration(secs)*time.Second)
	case "relay-login": // TOKEN
		out = login(os.Args[2])
	case "relay-fill": // TO
		out = fillQueue(os.Args[2])
	case "relay-schedule-flood": // SECONDS
		secs, _ := strconv.Atoi(os.Args[2])
		out = scheduleFlood(time.Duration(secs) * time.Second)
	default:
		fmt.Fprintln(os.Stderr, "unknown probe", os.Args[1])
		os.Exit(2)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

const relaySock = "/run/runner/relay.sock"

// forge tries to get into the relay without this container's credential.
func forge() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]string{}
	for name, token := range map[string]string{
		"random": strings.Repeat("ab", 32),
		"empty":  "",
		"short":  "00",
	} {
		c, err := relay.Dial(ctx, relaySock, token)
		if err == nil {
			c.Close()
		}
		out[name] = errString(err)
	}
	return out
}

// hostile throws what a misbehaving agent could at the relay socket and
// reports what it saw; the test then checks the relay still serves others.
func hostile() map[string]any {
	out := map[string]any{}
	dial := func() (net.Conn, error) { return net.DialTimeout("unix", relaySock, 2*time.Second) }
	// Garbage bytes.
	if c, err := dial(); err == nil {
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n\x00\xff garbage"))
		c.Close()
	}
	// An oversized frame header.
	if c, err := dial(); err == nil {
		c.Write([]byte{0x7f, 0xff, 0xff, 0xff})
		c.Write(make([]byte, 1<<16))
		c.Close()
	}
	// A half-written frame, held open while the rest goes on.
	held, err := dial()
	if err == nil {
		held.Write([]byte{0, 0, 0, 100, '{'})
		defer held.Close()
	}
	// Many connections at once.
	var conns []net.Conn
	opened := 0
	for i := 0; i < 1000; i++ {
		c, err := dial()
		if err != nil {
			break
		}
		opened++
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	out["opened"] = opened
	// A flood of requests with this container's real credential.
	tok, _ := os.ReadFile("/run/secrets/runner-credential")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	limited := 0
	// The relay may still be closing the burst above (it closes
	// connections over its limit at once): retry the dial for a while.
	var c *relay.Client
	for {
		c, err = relay.Dial(ctx, relaySock, strings.TrimSpace(string(tok)))
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil {
		for i := 0; i < 500; i++ {
			if _, err := c.Peers(); err != nil {
				if strings.Contains(err.Error(), "rate_limited") {
					limited++
					continue
				}
				out["flood_error"] = err.Error()
				break
			}
		}
		c.Close()
	} else {
		out["flood_dial"] = err.Error()
	}
	out["rate_limited"] = limited
	return out
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func procs() []Proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []Proc
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue // exited meanwhile
		}
		p := Proc{}
		p.PID, _ = strconv.Atoi(filepath.Base(d))
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "Name":
				p.Name = v
			case "PPid":
				p.PPID, _ = strconv.Atoi(v)
			case "Uid":
				p.Uid = v
			case "CapEff":
				p.CapEff = v
			case "CapPrm":
				p.CapPrm = v
			case "CapBnd":
				p.CapBnd = v
			case "CapAmb":
				p.CapAmb = v
			case "CapInh":
				p.CapInh = v
			case "NoNewPrivs":
				p.NoNewPrivs = v
			case "Seccomp":
				p.Seccomp = v
			}
		}
		out = append(out, p)
	}
	return out
}

// fork starts up to n sleeping children and reports how many started before
// the kernel refused; all are killed before returning.
func fork(n int) map[string]any {
	var cmds []*exec.Cmd
	var lastErr error
	for i := 0; i < n; i++ {
		// The image's single-threaded sleep, so the count is processes
		// and not Go runtime threads.
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			lastErr = err
			break
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
	}
	return map[string]any{"started": len(cmds), "error": errString(lastErr)}
}
