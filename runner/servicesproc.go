package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/secrets"
	"github.com/runner-dev/runner/internal/services"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/transcript"
)

// This file is the host-services process itself (see services.go for the
// commands' side): one per run, hosting the relay and the transcript
// recorder and the egress proxy as components of one supervisor. Another
// component is one more hostService in ServeServices and, if it needs
// configuration, one more field of hostConfig.

// hostService is a component of the process. Each reads its part of
// hostConfig.
type hostService = services.Service[hostConfig]

// hostConfig is everything the process's components are configured by,
// read from the run's private directory at start and on every reload.
type hostConfig struct {
	Relay    relayFile
	Services servicesFile
	Egress   rules.File    // private/egress.json; empty when no agent has egress
	Secrets  secrets.Store // private/secrets/store.json (secretsvc.go)
}

// servicesFile is private/services.json: what the process needs besides
// the relay's config, fixed by the apply that wrote it so that a process
// started again by another command (send, status) works on the same engine.
type servicesFile struct {
	// DockerHost is the engine endpoint apply used ("" for the
	// environment's default).
	DockerHost string `json:"docker_host"`
	// TranscriptMax is each agent's transcript cap, from
	// RUNNER_TRANSCRIPT_MAX at apply.
	TranscriptMax int64 `json:"transcript_max"`
	// AgentsFile is the base name of the agents file apply read: the
	// egress proxy's refusals tell the agent which file to edit.
	AgentsFile string `json:"agents_file,omitempty"`
}

// ContainerdEndpoint starts the endpoint services.json names for a run on
// containerd ("containerd+unix:///run/containerd/containerd.sock"), so the
// services process connects to the engine apply used.
const ContainerdEndpoint = "containerd+"

// writeServicesConfig writes services.json for the engine apply talks to
// and the agents file it read, and reports whether it changed.
func writeServicesConfig(st state.Run, info engine.Info, agentsFile string) (bool, error) {
	max, err := transcript.MaxFromEnv()
	if err != nil {
		return false, err
	}
	sf := servicesFile{TranscriptMax: max}
	// A name refusals cannot show as is (a space, a quote) is left out:
	// they then say "agents.hcl".
	if b := filepath.Base(agentsFile); agentsFile != "" && proxy.ShowableFileName(b) {
		sf.AgentsFile = b
	}
	switch info.Name {
	case "docker", "podman":
		sf.DockerHost = info.Endpoint
	case "containerd":
		sf.DockerHost = ContainerdEndpoint + info.Endpoint
	}
	data, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return false, err
	}
	if old, _ := os.ReadFile(st.ServicesConfig()); bytes.Equal(old, data) {
		return false, nil
	}
	return true, st.WriteFile(st.ServicesConfig(), data, 0o600)
}

func loadHostConfig(st state.Run) (hostConfig, error) {
	var hc hostConfig
	for path, v := range map[string]any{st.RelayConfig(): &hc.Relay, st.ServicesConfig(): &hc.Services} {
		data, err := os.ReadFile(path)
		if err != nil {
			return hc, err
		}
		if err := json.Unmarshal(data, v); err != nil {
			return hc, fmt.Errorf("%s: %w", path, err)
		}
	}
	f, err := loadEgressRules(st)
	if err != nil {
		return hc, err
	}
	hc.Egress = f
	if hc.Secrets, err = loadSecretStore(st); err != nil {
		return hc, err
	}
	return hc, nil
}

// ServicesOptions are what ServeServices needs from its caller.
type ServicesOptions struct {
	// Engine connects to the run's engine at endpoint (a DOCKER_HOST
	// value; "" for the environment's). The recorder uses it.
	Engine func(ctx context.Context, endpoint string) (engine.Engine, error)
	// Log is the process's log (its file, through the termsafe filter).
	Log hclog.Logger
	// Policy is the supervisor's backoff (zero: its defaults).
	Policy services.Policy
	// ChildArgv runs this program's ServeServicesChild for the same run
	// (SuperviseServices starts it).
	ChildArgv []string
	// Program runs this program (the child starts a new supervisor with
	// it, "services serve ROOT RUN", if its own was killed).
	Program []string

	supervisor int // the pid of the supervising parent, for control replies
}

// ServeServices runs the host services of one run in this process until
// ctx ends, holding the run's services lock and writing its pid file
// itself: the unsupervised form (tests; `runner services serve` runs
// SuperviseServices, whose child is ServeServicesChild).
func ServeServices(ctx context.Context, root, run string, o ServicesOptions) error {
	st, log, err := servicesRun(root, run, o)
	if err != nil {
		return err
	}
	lock, err := takeLock(st.ServicesLock())
	if err != nil {
		return err
	}
	defer lock.Close()
	return serveServices(ctx, st, o, log, func() error { return writePID(st, os.Getpid()) },
		func() { os.Remove(st.ServicesPID()) })
}

func servicesRun(root, run string, o ServicesOptions) (state.Run, hclog.Logger, error) {
	if err := names.Check("run", run); err != nil {
		return state.Run{}, nil, err
	}
	st := state.Run{Root: root, Name: run}
	if !st.Exists() {
		return st, nil, fmt.Errorf("host services: run %q has no state in %s", run, root)
	}
	log := o.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return st, log, nil
}

// writePID records pid, with its start time, as the run's host-services
// process.
func writePID(st state.Run, pid int) error {
	start, err := procStartTime(pid)
	if err != nil {
		return err
	}
	return st.WriteFile(st.ServicesPID(), fmt.Appendf(nil, "%d %d\n", pid, start), 0o600)
}

// serveServices serves until ctx ends. serving is called once every
// component and the control socket serve; done when they have stopped.
func serveServices(ctx context.Context, st state.Run, o ServicesOptions, log hclog.Logger, serving func() error, done func()) error {
	cfg, err := loadHostConfig(st)
	if err != nil {
		return fmt.Errorf("host services: %w (apply the run to write it)", err)
	}
	refresh := newRefreshService(st, log.Named("secrets"))
	sup := services.New(o.Policy, func(ev services.Event) { serviceFailed(st, log, ev) },
		newRelayService(log.Named("relay")),
		newRecorderService(st, o.Engine, log.Named("record")),
		newEgressService(st),
		refresh,
	)
	refresh.reload = func(ctx context.Context) error {
		cfg, err := loadHostConfig(st)
		if err != nil {
			return err
		}
		return sup.Reload(ctx, cfg)
	}
	if h := testEgressHosts(); h != "" {
		log.Warn("TEST-ONLY egress resolver", "detail", h)
	}
	if err := sup.Reload(ctx, cfg); err != nil {
		return err
	}
	os.Remove(st.ServicesSocket()) // a killed process's
	ln, err := net.Listen("unix", st.ServicesSocket())
	if err != nil {
		return fmt.Errorf("host services: control socket: %w", err)
	}
	defer os.Remove(st.ServicesSocket())
	if err := os.Chmod(st.ServicesSocket(), 0o600); err != nil {
		ln.Close()
		return err
	}
	if err := serving(); err != nil {
		ln.Close()
		return err
	}
	defer done()
	log.Info("host services serving", "run", st.Name, "pid", os.Getpid(), "engine", cfg.Services.DockerHost)
	go serveControl(ctx, ln, st, sup, log, o.supervisor)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	sup.Run(ctx)
	log.Info("host services stopped", "run", st.Name)
	return nil
}

// takeLock takes the process's OFD lock, waiting a little: a command that
// asks whether the lock is held never holds it, but a process that is
// stopping may still.
func takeLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host services lock: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	for i := 0; ; i++ {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return f, nil
		}
		if i == 100 || !(errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)) {
			f.Close()
			return nil, fmt.Errorf("host services: %s is held: another process serves this run (%v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serviceFailed logs and audits a component's failure.
func serviceFailed(st state.Run, log hclog.Logger, ev services.Event) {
	detail := fmt.Sprintf("%s failed (%d in a row), restarting in %s: %v", ev.Service, ev.Failures, ev.Delay, ev.Err)
	event := "service_restart"
	if ev.Failing {
		event = "service_failing"
		log.Error("component keeps failing; still retrying", "service", ev.Service, "failures", ev.Failures, "retry_in", ev.Delay, "error", ev.Err)
	} else {
		log.Warn("component failed; restarting", "service", ev.Service, "failures", ev.Failures, "retry_in", ev.Delay, "error", ev.Err)
	}
	l, err := audit.Open(st.Audit())
	if err != nil {
		log.Error("cannot write the audit log", "error", err)
		return
	}
	defer l.Close()
	if err := l.Append(audit.Event{Event: event, Actor: relay.Runner, Target: ev.Service, Detail: detail}); err != nil {
		log.Error("cannot write the audit log", "error", err)
	}
}

// serveControl answers the control socket: reload and status, one request
// per connection, from this user (or root) only. The socket is 0600 in the
// 0700 private directory, mounted in no container; the peer check is a
// second lock on the same door.
func serveControl(ctx context.Context, ln net.Listener, st state.Run, sup *services.Supervisor[hostConfig], log hclog.Logger, parent int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			if !peerAllowed(c) {
				log.Warn("control socket: refused a connection from another user")
				return
			}
			c.SetDeadline(time.Now().Add(60 * time.Second))
			line, err := bufio.NewReader(&limited{c, 4 << 10}).ReadBytes('\n')
			if err != nil {
				return
			}
			var req controlRequest
			rep := controlReply{PID: os.Getpid(), Supervisor: parent}
			if err := json.Unmarshal(line, &req); err != nil {
				rep.Error = "bad request: " + err.Error()
			}
			switch req.Op {
			case "status":
			case "reload":
				cfg, err := loadHostConfig(st)
				if err == nil {
					err = sup.Reload(ctx, cfg)
				}
				if err != nil {
					rep.Error = err.Error()
					log.Error("reload failed", "error", err)
				} else {
					log.Info("configuration reloaded")
				}
			default:
				if rep.Error == "" {
					rep.Error = fmt.Sprintf("unknown op %q: use reload or status", req.Op)
				}
			}
			rep.Services = sup.Status()
			json.NewEncoder(c).Encode(rep)
		}()
	}
}

// limited reads at most n bytes from a connection.
type limited struct {
	c net.Conn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	p = p[:min(len(p), l.n)]
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

// peerAllowed: the connecting process runs as this process's user or root.
func peerAllowed(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED) })
	return err == nil && cred != nil && (cred.Uid == 0 || int(cred.Uid) == os.Geteuid())
}
