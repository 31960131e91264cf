package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/secrets"
	"github.com/runner-dev/runner/internal/state"
)

// refreshService is the host-services component that reads a secret's
// from_command or from_file source again every `refresh` (a token that
// expires, such as `gh auth token` or a cloud CLI's): a changed value is
// written to the store and, for a file secret, to its tmpfs file in place;
// then the process reloads, so the injector uses it from the next request.
// No container is touched.
type refreshService struct {
	st     state.Run
	log    hclog.Logger
	now    func() time.Time
	reload func(context.Context) error // set by ServeServices: reload the whole process

	mu      sync.Mutex
	due     map[refreshKey]time.Time
	entries map[refreshKey]secrets.Entry
	wake    chan struct{}
}

type refreshKey struct{ agent, name string }

func newRefreshService(st state.Run, log hclog.Logger) *refreshService {
	return &refreshService{st: st, log: log, now: time.Now, due: map[refreshKey]time.Time{}, entries: map[refreshKey]secrets.Entry{}, wake: make(chan struct{}, 1)}
}

func (s *refreshService) Name() string { return "secrets-refresh" }

// Reload takes the store's entries that refresh; each is next due its
// refresh after its last update.
func (s *refreshService) Reload(_ context.Context, hc hostConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries := map[refreshKey]secrets.Entry{}
	due := map[refreshKey]time.Time{}
	for agent, m := range hc.Secrets.Agents {
		for name, e := range m {
			if e.Refresh <= 0 || (e.Source.Kind != "from_command" && e.Source.Kind != "from_file") {
				continue
			}
			k := refreshKey{agent, name}
			entries[k] = e
			due[k] = e.Updated.Add(e.Refresh)
			if old, ok := s.due[k]; ok && s.entries[k].Refresh == e.Refresh && old.After(due[k]) {
				due[k] = old // an unchanged value keeps Updated; keep the later schedule
			}
		}
	}
	s.entries, s.due = entries, due
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *refreshService) Run(ctx context.Context) error {
	for {
		s.mu.Lock()
		var next time.Time
		for _, t := range s.due {
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
		s.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(s.now()), 0)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-s.wake:
			timer.Stop()
			continue
		case <-timer.C:
		}
		s.refreshDue(ctx)
	}
}

// refreshDue reads every due source again and, if any value changed,
// stores it and reloads the process.
func (s *refreshService) refreshDue(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	var due []refreshKey
	for k, t := range s.due {
		if !t.After(now) {
			due = append(due, k)
			s.due[k] = now.Add(s.entries[k].Refresh)
		}
	}
	entries := maps.Clone(s.entries)
	s.mu.Unlock()
	slices.SortFunc(due, func(a, b refreshKey) int { return cmpKey(a, b) })
	changed := map[refreshKey]string{}
	for _, k := range due {
		v, err := secrets.Resolver{}.Reread(ctx, k.agent, k.name, entries[k])
		if err != nil {
			// The old value stays in use; say so once per failure.
			s.log.Warn("secret refresh failed; the previous value stays in use", "agent", k.agent, "secret", k.name, "error", err.Error())
			continue
		}
		if v != entries[k].Value {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return
	}
	if err := s.store(changed, now); err != nil {
		s.log.Warn("cannot store refreshed secrets", "error", err.Error())
		return
	}
	if s.reload != nil {
		if err := s.reload(ctx); err != nil {
			s.log.Warn("reload after a secret refresh", "error", err.Error())
		}
	}
}

func cmpKey(a, b refreshKey) int {
	if a.agent != b.agent {
		if a.agent < b.agent {
			return -1
		}
		return 1
	}
	if a.name < b.name {
		return -1
	} else if a.name > b.name {
		return 1
	}
	return 0
}

// store writes the new values to the store (under its lock) and each file
// secret's tmpfs file, keeping that file's owner.
func (s *refreshService) store(changed map[refreshKey]string, now time.Time) error {
	unlock, err := secrets.Lock(s.st)
	if err != nil {
		return err
	}
	defer unlock()
	store, err := secrets.Load(s.st)
	if err != nil {
		return err
	}
	log, _ := audit.Open(s.st.Audit())
	if log != nil {
		defer log.Close()
	}
	for k, v := range changed {
		e, ok := store.Agents[k.agent][k.name]
		if !ok {
			continue // removed by an apply meanwhile
		}
		e.Value, e.Updated = v, now
		store.Agents[k.agent][k.name] = e
		if e.Kind == secrets.KindFile {
			path := filepath.Join(fileSecretsDir(s.st, k.agent), filepath.Base(e.File))
			fi, err := os.Lstat(path)
			if err != nil {
				return fmt.Errorf("secret %s of %s: %w", k.name, k.agent, err)
			}
			sys := fi.Sys().(*syscall.Stat_t)
			if err := writeSecretFile(path, v, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
		if log != nil {
			log.Append(audit.Event{Time: now, Event: "secret_refresh", Actor: "runner", Target: k.agent, Detail: "secret " + k.name + " refreshed from its " + e.Source.Kind})
		}
	}
	return secrets.Save(s.st, store)
}
