package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/uids"
)

// hostRoot is where the engine host's /etc is read from; tests of the
// allocation logic point it elsewhere.
var hostRoot = "/"

// idHost is what allocating uids needs to know about the engine's host.
type idHost struct {
	mapping uids.Mapping
	host    *uids.Host
}

// hostIDs maps a container's "uid:gid" to the host ids its files and
// processes have; ok is false for an unparsable user or ids the engine's
// namespace does not map.
func (ih idHost) hostIDs(user string) (uid, gid, hostUID, hostGID uint32, ok bool) {
	uid, gid, ok = uids.ParseUser(user)
	if !ok {
		return 0, 0, 0, 0, false
	}
	hu, okU := ih.mapping.HostUID(uid)
	hg, okG := ih.mapping.HostGID(gid)
	return uid, gid, hu, hg, okU && okG
}

// engineIDs reads how the engine maps container ids to host ids, and the
// host's accounts. The engine must be on this host (a unix socket): the
// accounts checked are this machine's, and the relay's mounts are this
// machine's paths too. For a rootless daemon the daemon's own uid comes
// from the socket's peer credentials, its subordinate range from
// /etc/subuid; for userns-remap from the daemon's data root.
//
// An engine with a user namespace per run (engine.RunUserNS) says itself
// how run's ids map; run "" (doctor) then reports the engine's kind only.
func engineIDs(ctx context.Context, eng engine.Engine, info engine.Info, run string) (idHost, error) {
	sock, local := strings.CutPrefix(info.Endpoint, "unix://")
	if !local {
		return idHost{}, fmt.Errorf("the engine at %s is not on this host, so runner cannot check that the uids it gives agents are no account there (it reads /etc/passwd, /etc/group, /etc/subuid and /etc/subgid of the engine's host): run runner on the engine's host, or set user = \"UID:GID\" on every agent", info.Endpoint)
	}
	h, err := uids.ReadHost(hostRoot)
	if err != nil {
		return idHost{}, err
	}
	if rn, ok := eng.(engine.RunUserNS); ok {
		if run == "" {
			return idHost{mapping: uids.Mapping{Kind: "userns"}, host: h}, nil
		}
		m, err := rn.RunMapping(ctx, run)
		return idHost{mapping: m, host: h}, err
	}
	switch {
	case info.Rootless:
		uid, gid, err := peerIDs(ctx, sock)
		if err != nil {
			return idHost{}, fmt.Errorf("finding the user the rootless engine at %s runs as: %w", info.Endpoint, err)
		}
		m, err := uids.Rootless(h, uid, gid)
		return idHost{mapping: m, host: h}, err
	case info.UserNS:
		u, g, ok := strings.Cut(info.RemapRoot, ".")
		uid, err1 := strconv.ParseUint(u, 10, 32)
		gid, err2 := strconv.ParseUint(g, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return idHost{}, fmt.Errorf("the engine at %s remaps user namespaces, but its data root does not say to which ids (%q)", info.Endpoint, info.RemapRoot)
		}
		m, err := uids.Remap(h, uint32(uid), uint32(gid))
		return idHost{mapping: m, host: h}, err
	default:
		return idHost{mapping: uids.Identity(), host: h}, nil
	}
}

// peerIDs is the uid and gid of the process listening on a unix socket.
func peerIDs(ctx context.Context, path string) (uint32, uint32, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "unix", path)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, serr
	}
	return cred.Uid, cred.Gid, nil
}

// allocateUsers returns the "uid:gid" of every agent of cfg: the file's
// when it sets user, else one from internal/uids that no other runner
// container on the engine and no account of the engine's host has. An
// agent's existing container keeps its uid while that is still free.
func (r *Runner) allocateUsers(ctx context.Context, cfg *config.Config, info engine.Info) (map[string]string, error) {
	out := map[string]string{}
	req := uids.Request{Run: cfg.Run.Name, Current: map[string]uint32{}, Taken: map[uint32]string{}}
	for _, a := range cfg.Agents {
		if a.User != "" {
			out[a.Name] = a.User
			if uid, _, ok := uids.ParseUser(a.User); ok {
				req.Taken[uid] = cfg.Run.Name + "/" + a.Name + " (its user attribute)"
			}
			continue
		}
		req.Agents = append(req.Agents, a.Name)
	}
	if len(req.Agents) == 0 {
		return out, nil
	}
	ih, err := engineIDs(ctx, r.Engine, info, cfg.Run.Name)
	if err != nil {
		return nil, err
	}
	req.Conflict = func(id uint32) string { return ih.host.Conflict(ih.mapping, id) }
	all, err := r.Engine.List(ctx, "")
	if err != nil {
		return nil, err
	}
	auto := map[string]bool{}
	for _, a := range req.Agents {
		auto[a] = true
	}
	for _, c := range all {
		uid, _, ok := uids.ParseUser(c.Labels[engine.LabelUser])
		if !ok {
			continue
		}
		if c.Run == cfg.Run.Name && auto[c.Agent] {
			req.Current[c.Agent] = uid
			continue
		}
		if _, dup := req.Taken[uid]; !dup {
			req.Taken[uid] = c.Run + "/" + c.Agent
		}
	}
	ids, err := uids.Allocate(req)
	if err != nil {
		return nil, err
	}
	for a, id := range ids {
		out[a] = uids.User(id)
	}
	return out, nil
}

// withUser is a copy of a with the user it runs as.
func withUser(a config.Agent, users map[string]string) config.Agent {
	if u := users[a.Name]; u != "" {
		a.User = u
	}
	return a
}

// ownCredentials makes each agent's credential file readable by that
// agent's host uid alone (0400, owned by it): no other agent's uid, and no
// host account, can read it even through a path that reaches the file.
// Changing a file's owner needs root (CAP_CHOWN); without it the file stays
// 0444 in the operator's 0700 directory, readable inside the agent's own
// container only, as before.
func (r *Runner) ownCredentials(ctx context.Context, st state.Run, info engine.Info, ds []desiredAgent) {
	ih, err := engineIDs(ctx, r.Engine, info, st.Name)
	if err != nil {
		r.log().Debug("credential files keep mode 0444", "reason", err)
		return
	}
	for _, d := range ds {
		_, _, hu, hg, ok := ih.hostIDs(d.spec.User)
		if !ok {
			continue
		}
		p := st.Cred(d.agent.Name)
		if err := os.Lchown(p, int(hu), int(hg)); err != nil {
			if !errors.Is(err, os.ErrPermission) {
				r.log().Warn("cannot give an agent its credential file", "agent", d.agent.Name, "error", err)
			}
			continue
		}
		if err := os.Chmod(p, 0o400); err != nil {
			r.log().Warn("cannot make an agent's credential file 0400", "agent", d.agent.Name, "error", err)
		}
	}
}

// AgentIDs is who an agent runs as, for status and doctor.
type AgentIDs struct {
	// UID and GID inside the container; HostUID and HostGID what the
	// kernel sees outside (equal without a user namespace; 0 = unknown).
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	HostUID uint32 `json:"host_uid,omitempty"`
	HostGID uint32 `json:"host_gid,omitempty"`
	// Source is "allocated" (runner chose it) or "config" (the file's user).
	Source string `json:"uid_source"`
}

// agentIDs describes a container's user under the engine's mapping.
func agentIDs(user string, explicit bool, ih *idHost) *AgentIDs {
	uid, gid, ok := uids.ParseUser(user)
	if !ok {
		return nil
	}
	ids := &AgentIDs{UID: uid, GID: gid, Source: "allocated"}
	if explicit {
		ids.Source = "config"
	}
	if ih != nil {
		ids.HostUID, _ = ih.mapping.HostUID(uid)
		ids.HostGID, _ = ih.mapping.HostGID(gid)
	}
	return ids
}

// DoctorIDs is doctor's part on uids: how the engine maps them, how many of
// the range are free on its host, and the uid of every runner container the
// engine has (every run's).
func DoctorIDs(ctx context.Context, eng engine.Engine, info engine.Info) []Check {
	var out []Check
	ih, err := engineIDs(ctx, eng, info, "")
	if err != nil {
		return append(out, Check{Name: "uids", Detail: err.Error()})
	}
	// With a namespace per run, ids are counted in the one a new run
	// would get (every run's lies in the same account's range) and each
	// container is described in its own run's.
	perRun := len(ih.mapping.UID) == 0 && ih.mapping.Namespaced()
	forRun := func(run string) idHost {
		if h, err := engineIDs(ctx, eng, info, run); err == nil {
			return h
		}
		return ih
	}
	if perRun {
		desc := ih.mapping.Describe()
		if ih, err = engineIDs(ctx, eng, info, "doctor"); err != nil {
			return append(out, Check{Name: "userns", Detail: err.Error()})
		}
		out = append(out, Check{Name: "userns", OK: true, Detail: desc + ": " + ih.mapping.Owner})
	}
	if !perRun {
		out = append(out, Check{Name: "userns", OK: ih.mapping.Namespaced(), Detail: ih.mapping.Describe()})
	}
	list, err := eng.List(ctx, "")
	if err != nil {
		return append(out, Check{Name: "uids", Detail: "cannot list runner containers: " + err.Error()})
	}
	inUse := map[uint32]bool{}
	for _, c := range list {
		if uid, _, ok := uids.ParseUser(c.Labels[engine.LabelUser]); ok {
			inUse[uid] = true
		}
	}
	free, hostHeld := 0, 0
	for id := uids.First; id <= uids.Last; id++ {
		switch {
		case ih.host.Conflict(ih.mapping, id) != "":
			hostHeld++
		case !inUse[id]:
			free++
		}
	}
	out = append(out, Check{Name: "uids", OK: free > 0, Detail: fmt.Sprintf(
		"agents without a user attribute get their own uid and gid from %d-%d: %d free, %d used by agents, %d held by host accounts or subordinate ranges (/etc/passwd, /etc/group, /etc/subuid, /etc/subgid)",
		uids.First, uids.Last, free, len(inUse), hostHeld)})
	for _, c := range list {
		ih := ih
		if perRun {
			ih = forRun(c.Run)
		}
		ids := agentIDs(c.Labels[engine.LabelUser], false, &ih)
		d := fmt.Sprintf("%s/%s: no runner.user label (created by an older runner; the next apply replaces it)", c.Run, c.Agent)
		ok := false
		if ids != nil {
			d = fmt.Sprintf("%s/%s: uid %d, gid %d", c.Run, c.Agent, ids.UID, ids.GID)
			if ih.mapping.Namespaced() {
				d += fmt.Sprintf(" (host %d:%d)", ids.HostUID, ids.HostGID)
			}
			ok = true
			if why := ih.host.Conflict(ih.mapping, ids.UID); why != "" {
				d += ": " + why
				ok = false
			}
		}
		out = append(out, Check{Name: "agent", OK: ok, Detail: d})
	}
	return out
}

// checkUIDUnique runs after an agent's container is created and before it
// starts: an apply of another run at the same moment may have picked the
// same uid (each allocated before the other's container existed). Of two
// containers with one allocated uid the older keeps it; the newer is
// refused, and the next apply gives its agent another uid.
func (r *Runner) checkUIDUnique(ctx context.Context, d desiredAgent, id string) error {
	uid, _, ok := uids.ParseUser(d.spec.User)
	if d.agent.User != "" || !ok {
		return nil // the file's user: the operator's choice
	}
	all, err := r.Engine.List(ctx, "")
	if err != nil {
		return err
	}
	var self *engine.Container
	for i := range all {
		if all[i].ID == id {
			self = &all[i]
		}
	}
	for _, c := range all {
		other, _, ok := uids.ParseUser(c.Labels[engine.LabelUser])
		if c.ID == id || !ok || other != uid {
			continue
		}
		if self != nil && (c.Created.After(self.Created) || (c.Created.Equal(self.Created) && c.ID > id)) {
			continue // the other is newer: it gives way
		}
		return fmt.Errorf("uid %d was given to %s/%s at the same moment by another apply; apply again and this agent gets another uid", uid, c.Run, c.Agent)
	}
	return nil
}
