package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// A relay in a process of its own (this test binary, run again), for tests
// that kill it with SIGKILL and benchmarks that measure its memory apart from
// its clients'.

const procEnv = "RELAY_TEST_PROCESS_CONFIG"

type procConfig struct {
	StateDir    string
	AuditPath   string
	Sockets     map[string]string
	Credentials map[string]string
	ACL         map[string][]string
	RateLimit   Rate
	QueueLimit  int
}

func TestMain(m *testing.M) {
	if path := os.Getenv(procEnv); path != "" {
		if err := serveProc(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func serveProc(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var pc procConfig
	if err := json.Unmarshal(b, &pc); err != nil {
		return err
	}
	log, err := audit.Open(pc.AuditPath)
	if err != nil {
		return err
	}
	srv, err := New(Config{Run: "proc", StateDir: pc.StateDir, Sockets: pc.Sockets, Credentials: pc.Credentials,
		ACL: pc.ACL, RateLimit: pc.RateLimit, QueueLimit: pc.QueueLimit, Audit: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// RELAY_TEST_CPUPROFILE=FILE profiles the relay process until SIGTERM.
	if out := os.Getenv("RELAY_TEST_CPUPROFILE"); out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
		defer func() {
			c, o := srv.commits.commits.Load(), srv.commits.ops.Load()
			os.WriteFile(out+".commits", fmt.Appendf(nil, "%d commits, %d ops, %.1f ops/commit\n", c, o, float64(o)/float64(max(c, 1))), 0o600)
		}()
	}
	// RELAY_TEST_HEAPPROFILE=FILE writes the relay's heap profile at SIGTERM.
	if out := os.Getenv("RELAY_TEST_HEAPPROFILE"); out != "" {
		defer func() {
			if f, err := os.Create(out); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	return srv.Serve(ctx)
}

// relayProc is a relay running in a child process.
type relayProc struct {
	tb   testing.TB
	cfg  procConfig
	path string // the config file
	cmd  *exec.Cmd
	// exited has the process's exit once it ended.
	exited chan error
}

// newRelayProc prepares (does not start) a relay process for ids, on the
// disk under root: state, audit log and sockets.
func newRelayProc(tb testing.TB, root string, ids []string, acl map[string][]string) *relayProc {
	tb.Helper()
	sockDir, err := os.MkdirTemp("", "relayp")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	creds := credentialsFor(tb, ids...)
	pc := procConfig{
		StateDir:    filepath.Join(root, "state"),
		AuditPath:   filepath.Join(root, "audit.log"),
		Sockets:     socketsIn(sockDir, creds),
		Credentials: creds,
		ACL:         acl,
		RateLimit:   Rate{PerSecond: 1e9, Burst: 1 << 30},
		QueueLimit:  maxQueueLimit,
	}
	b, _ := json.Marshal(pc)
	path := filepath.Join(root, "relay.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	p := &relayProc{tb: tb, cfg: pc, path: path}
	tb.Cleanup(func() {
		if p.cmd != nil {
			p.kill()
		}
	})
	return p
}

// start runs the relay and waits until it answers on its operator socket.
func (p *relayProc) start() {
	p.tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), procEnv+"="+p.path)
	// RELAY_TEST_GOMEMLIMIT: a soft memory limit for the relay process
	// alone (the host-services process could set one).
	if v := os.Getenv("RELAY_TEST_GOMEMLIMIT"); v != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		p.tb.Fatal(err)
	}
	p.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-exited:
			p.cmd = nil
			p.tb.Fatalf("relay process exited at start: %v\n%s", err, stderr.String())
		default:
		}
		if c, err := p.dialErr(Operator); err == nil {
			c.Close()
			p.exited = exited
			return
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("relay process did not listen within 20s\n%s", stderr.String())
		}
	}
}

func (p *relayProc) dialErr(id string) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Dial(ctx, p.cfg.Sockets[id], p.cfg.Credentials[id])
}

func (p *relayProc) dial(id string) *Client {
	p.tb.Helper()
	c, err := p.dialErr(id)
	if err != nil {
		p.tb.Fatalf("dial as %s: %v", id, err)
	}
	p.tb.Cleanup(func() { c.Close() })
	return c
}

// kill ends the relay with SIGKILL and waits for it (SIGTERM when
// profiling, so the profile is written).
func (p *relayProc) kill() {
	sig := syscall.SIGKILL
	if os.Getenv("RELAY_TEST_CPUPROFILE") != "" || os.Getenv("RELAY_TEST_HEAPPROFILE") != "" {
		sig = syscall.SIGTERM
	}
	p.cmd.Process.Signal(sig)
	<-p.exited
	p.cmd = nil
}

// memMiB reads the relay's resident memory now and at its peak.
func (p *relayProc) memMiB() (rss, peak float64) {
	p.tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscan(v, &kb)
			rss = kb / 1024
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscan(v, &kb)
			peak = kb / 1024
		}
	}
	return rss, peak
}
