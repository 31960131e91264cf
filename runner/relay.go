package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/state"
)

// Where an agent's relay directory and credential appear in its container.
// The shim reads both from here.
const (
	RelayMountTarget = config.RelayDir // holds the agent's own relay.sock only
	CredentialTarget = "/run/secrets/runner-credential"
)

// relayFile is private/relay.json: everything the relay of the run's host
// services needs.
// It holds credentials, so it is 0600 in the 0700 private directory.
type relayFile struct {
	Run         string              `json:"run"`
	Sockets     map[string]string   `json:"sockets"` // identity -> its socket`
	Journal     string              `json:"journal"`
	Audit       string              `json:"audit"`
	Credentials map[string]string   `json:"credentials"`
	ACL         map[string][]string `json:"acl"`
	Checkins    []relay.Checkin     `json:"checkins"`
}

func (r *Runner) runState(run string) (state.Run, error) {
	if r.StateRoot != "" {
		return state.Run{Root: r.StateRoot, Name: run}, nil
	}
	return state.ForRun(run)
}

// prepareRelay creates the run's state, a credential for every agent that has
// none (credentials live as long as the run: destroy removes them), and the
// relay's config. It returns whether the config changed.
func (r *Runner) prepareRelay(cfg *config.Config, st state.Run) (changed bool, err error) {
	if err := st.Create(); err != nil {
		return false, err
	}
	rf := relayFile{
		Run: cfg.Run.Name, Journal: st.Journal(), Audit: st.Audit(),
		Sockets:     map[string]string{relay.Operator: st.OperatorSocket()},
		Credentials: map[string]string{}, ACL: map[string][]string{},
	}
	ids := []string{relay.Operator}
	for _, a := range cfg.Agents {
		ids = append(ids, a.Name)
		if err := st.CreateAgentRelayDir(a.Name); err != nil {
			return false, err
		}
		rf.Sockets[a.Name] = st.AgentSocket(a.Name)
		// Exact names, resolved by the config's rules (a glob never
		// matches the sender or the operator), not the raw patterns.
		rf.ACL[a.Name] = cfg.Peers(a.Name)
		for _, c := range a.Checkins {
			rf.Checkins = append(rf.Checkins, relay.Checkin{Agent: a.Name, Every: c.Every, AfterIdle: c.AfterIdle, Message: c.Message})
		}
	}
	for _, id := range ids {
		secret, err := readOrCreateCred(st, id)
		if err != nil {
			return false, err
		}
		rf.Credentials[id] = secret
	}
	// Agents removed from the config lose their credential and socket
	// directory.
	if entries, err := os.ReadDir(st.Cred("")); err == nil {
		for _, e := range entries {
			if _, keep := rf.Credentials[e.Name()]; !keep {
				os.Remove(st.Cred(e.Name()))
			}
		}
	}
	if entries, err := os.ReadDir(st.RelayDir()); err == nil {
		for _, e := range entries {
			if _, keep := rf.Sockets[e.Name()]; !keep || e.Name() == relay.Operator {
				os.RemoveAll(filepath.Join(st.RelayDir(), e.Name()))
			}
		}
	}
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return false, err
	}
	old, _ := os.ReadFile(st.RelayConfig())
	if bytes.Equal(old, data) {
		return false, nil
	}
	return true, st.WriteFile(st.RelayConfig(), data, 0o600)
}

// readOrCreateCred returns id's credential, making one if it has none. An
// agent's file is 0444 because it is bind-mounted and read by the agent's
// uid; the 0700 private directory keeps other host users out. The
// operator's is 0400.
func readOrCreateCred(st state.Run, id string) (string, error) {
	b, err := os.ReadFile(st.Cred(id))
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !os.IsNotExist(err) {
		return "", err
	}
	secret, err := relay.GenerateCredential()
	if err != nil {
		return "", err
	}
	mode := os.FileMode(0o444)
	if id == relay.Operator {
		mode = 0o400
	}
	return secret, st.WriteFile(st.Cred(id), []byte(secret+"\n"), mode)
}

// relayMounts are the two mounts every agent container gets: its own relay
// directory (its socket only: no other agent's, not the operator's) and its
// own credential.
func relayMounts(st state.Run, agent string) []engine.Mount {
	return []engine.Mount{
		{Source: st.AgentRelayDir(agent), Target: RelayMountTarget, ReadOnly: true},
		{Source: st.Cred(agent), Target: CredentialTarget, ReadOnly: true},
	}
}

func (r *Runner) relayAnswers(ctx context.Context, st state.Run) bool {
	c, err := dialOperator(ctx, st)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// errNotApplied is operatorClient's error when the run has no credential
// here: its callers say what to do (apply), once.
var errNotApplied = errors.New("it has not been applied on this host")

// operatorClient connects to the run's relay as the operator. If no
// host-services process serves the run (it was killed), it starts one
// first: every command that talks to the relay brings it back.
func (r *Runner) operatorClient(ctx context.Context, st state.Run) (*relay.Client, error) {
	c, err := dialOperator(ctx, st)
	if err == nil {
		return c, nil
	}
	revived, rerr := r.reviveServices(ctx, st)
	if rerr != nil {
		return nil, fmt.Errorf("%w; starting the run's host services again failed: %v", err, rerr)
	}
	if !revived {
		return nil, err
	}
	return dialOperator(ctx, st)
}

func dialOperator(ctx context.Context, st state.Run) (*relay.Client, error) {
	b, err := os.ReadFile(st.Cred(relay.Operator))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotApplied
	}
	if err != nil {
		return nil, fmt.Errorf("run %q's operator credential: %w", st.Name, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return relay.Dial(dctx, st.OperatorSocket(), strings.TrimSpace(string(b)))
}

// Send delivers a message from the operator to an agent.
func (r *Runner) Send(ctx context.Context, cfg *config.Config, agent, body string) (uint64, error) {
	if _, err := r.agentOf(cfg, agent); err != nil {
		return 0, err
	}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return 0, err
	}
	c, err := r.operatorClient(ctx, st)
	if err != nil {
		return 0, relayUnreachable(cfg.Run.Name, cfg.File, err)
	}
	defer c.Close()
	return c.Send(agent, body)
}

// OperatorClient connects to the run's relay as the operator, for callers
// that send many messages over one connection.
func (r *Runner) OperatorClient(ctx context.Context, run string) (*relay.Client, error) {
	st, err := r.runState(run)
	if err != nil {
		return nil, err
	}
	return r.operatorClient(ctx, st)
}

// relayUnreachable says why the operator cannot reach the run's relay and
// what to do, once.
func relayUnreachable(run, file string, err error) error {
	if errors.Is(err, errNotApplied) {
		return fmt.Errorf("run %q has not been applied on this host: run `runner apply %s` first", run, file)
	}
	return fmt.Errorf("cannot reach run %q's relay: %w; `runner apply %s` restarts its host services (their log: private/services.log in the run's state)", run, err, file)
}

// sendBrief gives a newly created agent its brief once; the client id makes
// a repeated apply of the same container a no-op at the relay.
func (r *Runner) sendBrief(ctx context.Context, st state.Run, agent, containerID, brief string) error {
	c, err := r.operatorClient(ctx, st)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.SendMessage(relay.Message{To: agent, Body: brief, Kind: "brief", ClientID: "brief-" + shortID(containerID)})
	return err
}

// Audit appends an operator decision (apply, destroy) to the run's audit log.
func (r *Runner) audit(st state.Run, event, target, detail string) {
	log, err := audit.Open(st.Audit())
	if err != nil {
		r.log().Warn("cannot write the audit log", "error", err)
		return
	}
	defer log.Close()
	if err := log.Append(audit.Event{Time: time.Now(), Event: event, Actor: relay.Operator, Target: target, Detail: detail}); err != nil {
		r.log().Warn("cannot write the audit log", "error", err)
	}
}

// AuditLog returns the path of the run's audit log.
func (r *Runner) AuditLog(run string) (string, error) {
	st, err := r.runState(run)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(st.Audit()); err != nil {
		return "", fmt.Errorf("run %q has no audit log at %s: it has not been applied on this host (or was destroyed: see %s/archive)", run, st.Audit(), st.Root)
	}
	return st.Audit(), nil
}
