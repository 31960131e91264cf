package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/inject"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/secrets"
	"github.com/runner-dev/runner/internal/state"
)

// This file is apply's side of an agent's secrets (see internal/secrets
// and internal/egress/inject): read every source before anything is
// created, keep the values in the run's private store, and give each
// container only what it declares — the stand-in of each proxied secret
// in its environment plus the run CA in its trust, and its file secrets in
// a read-only tmpfs directory of its own.

// TrustMountTarget is where an agent with proxied secrets finds the trust
// bundle (the host's roots plus the run CA).
const TrustMountTarget = "/run/runner-trust"

// trustEnv are the variables that point the usual TLS clients at the
// bundle: OpenSSL (SSL_CERT_FILE), Node (NODE_EXTRA_CA_CERTS), Python
// requests, curl and git.
var trustEnv = []string{"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"}

// trustDir is the bundle's directory in the run's state: public material
// (certificates), mounted read-only; the CA key is in secrets.Dir.
func trustDir(st state.Run) string { return filepath.Join(st.Dir(), "trust") }

// shmDir is the host tmpfs file secrets are written to.
var shmDir = "/dev/shm"

// fileSecretsRoot is the run's directory of file secrets on the host
// tmpfs: one directory per agent below it, mounted at config.SecretsDir.
func fileSecretsRoot(st state.Run) string {
	sum := sha256.Sum256([]byte(st.Dir()))
	return filepath.Join(shmDir, "runner-secrets-"+hex.EncodeToString(sum[:8]))
}

func fileSecretsDir(st state.Run, agent string) string {
	return filepath.Join(fileSecretsRoot(st), agent)
}

func hasInject(a config.Agent) bool {
	return slices.ContainsFunc(a.Secrets, func(s config.Secret) bool { return s.Inject != nil })
}

func hasFiles(a config.Agent) bool {
	return slices.ContainsFunc(a.Secrets, func(s config.Secret) bool { return s.File != "" })
}

func anySecrets(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.Agents, func(a config.Agent) bool { return len(a.Secrets) > 0 })
}

// secretBindings is what the config hash covers of a's secrets: names,
// kinds and bindings, never values.
func secretBindings(a config.Agent) string {
	var b strings.Builder
	for _, s := range a.Secrets {
		b.WriteString("\x00" + s.Binding())
	}
	return b.String()
}

// addSecretMounts adds what a's secrets need that does not depend on
// their values: the trust bundle and its variables, the file secrets'
// directory. It goes into the hashed spec.
func addSecretMounts(spec *engine.Spec, st state.Run, a config.Agent) {
	if hasInject(a) {
		spec.Mounts = append(spec.Mounts, engine.Mount{Source: trustDir(st), Target: TrustMountTarget, ReadOnly: true})
		for _, k := range trustEnv {
			spec.Env = setEnv(spec.Env, k, TrustMountTarget+"/bundle.pem")
		}
	}
	if hasFiles(a) {
		spec.Mounts = append(spec.Mounts, engine.Mount{Source: fileSecretsDir(st, a.Name), Target: config.SecretsDir, ReadOnly: true})
	}
}

// addStandIns puts each proxied secret's stand-in in the environment,
// after the hash: the stand-in is per run, and the hash covers the binding.
// A stand-in the store does not have yet (plan before the first apply) is
// a placeholder; apply always has them.
func addStandIns(spec *engine.Spec, a config.Agent, store secrets.Store) {
	for _, s := range a.Secrets {
		if s.Inject == nil {
			continue
		}
		v := store.Agents[a.Name][s.Name].StandIn
		if v == "" {
			v = "(stand-in made at apply)"
		}
		spec.Env = setEnv(spec.Env, s.Name, v)
	}
}

func setEnv(env []string, k, v string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	out = append(out, k+"="+v)
	sort.Strings(out)
	return out
}

// prepareSecrets reads every secret source of cfg (each failure with the
// file:line:col of its source, before anything is created), and writes
// the store, the stand-in key, the run CA and the trust bundle. It
// reports whether the store changed (the host services then reload).
func (r *Runner) prepareSecrets(ctx context.Context, cfg *config.Config, st state.Run) (bool, error) {
	old, err := secrets.Load(st)
	if err != nil {
		return false, err
	}
	if !anySecrets(cfg) {
		if len(old.Agents) == 0 {
			return false, nil
		}
		return true, secrets.Save(st, secrets.Store{})
	}
	vals, errs := secrets.Resolver{}.All(ctx, cfg)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return false, fmt.Errorf("cannot read %d secret source(s); nothing was created:\n  %s", len(errs), strings.Join(msgs, "\n  "))
	}
	if err := st.Create(); err != nil {
		return false, err
	}
	unlock, err := secrets.Lock(st) // the host services' refresher writes it too
	if err != nil {
		return false, err
	}
	defer unlock()
	if old, err = secrets.Load(st); err != nil {
		return false, err
	}
	key, err := secrets.Key(st)
	if err != nil {
		return false, err
	}
	store := secrets.Build(key, cfg, vals, old, time.Now())
	changed := !store.Equal(old)
	if changed {
		if err := secrets.Save(st, store); err != nil {
			return false, err
		}
	}
	if slices.ContainsFunc(cfg.Agents, hasInject) {
		ca, err := inject.LoadCA(secrets.Dir(st))
		if err != nil {
			return false, err
		}
		bundle, err := ca.Bundle()
		if err != nil {
			return false, err
		}
		if err := os.Mkdir(trustDir(st), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, err
		}
		if err := os.Chmod(trustDir(st), 0o755); err != nil {
			return false, err
		}
		if old, _ := os.ReadFile(filepath.Join(trustDir(st), "bundle.pem")); string(old) != string(bundle) {
			if err := st.WriteFile(filepath.Join(trustDir(st), "bundle.pem"), bundle, 0o644); err != nil {
				return false, err
			}
		}
	}
	return changed, nil
}

// writeFileSecrets writes each agent's file secrets to its directory on
// the host tmpfs: the directory 0500 and the files 0400, owned by the
// agent's uid as the engine maps it, so the agent reads them and, through
// the read-only mount, can neither write nor chmod them. Other agents
// mount only their own directory. Files of secrets no longer declared are
// removed; a changed value replaces its file atomically, in place.
func (r *Runner) writeFileSecrets(ctx context.Context, st state.Run, info engine.Info, ds []desiredAgent) error {
	need := slices.ContainsFunc(ds, func(d desiredAgent) bool { return hasFiles(d.agent) })
	root := fileSecretsRoot(st)
	if !need {
		return os.RemoveAll(root)
	}
	var fsst unix.Statfs_t
	if err := unix.Statfs(shmDir, &fsst); err != nil || fsst.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("file secrets are written to a tmpfs, never to disk, and %s is not one (or is missing): mount a tmpfs there, or use inject for these secrets", shmDir)
	}
	ih, err := engineIDs(ctx, r.Engine, info, st.Name)
	if err != nil {
		return fmt.Errorf("file secrets: %w", err)
	}
	store, err := secrets.Load(st)
	if err != nil {
		return err
	}
	if err := os.Mkdir(root, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(root, 0o711); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, d := range ds {
		if !hasFiles(d.agent) {
			continue
		}
		keep[d.agent.Name] = true
		_, _, hu, hg, ok := ih.hostIDs(d.spec.User)
		if !ok {
			return fmt.Errorf("%s: cannot tell which host uid the engine gives uid %s, so its file secrets cannot be made its own", d.agent.Name, d.spec.User)
		}
		dir := fileSecretsDir(st, d.agent.Name)
		if err := os.Mkdir(dir, 0o500); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		// The relay credential is mounted on top at CredentialTarget, in
		// the same directory: its mount point must exist in the read-only
		// directory beforehand.
		files := map[string]bool{filepath.Base(CredentialTarget): true}
		if err := writeSecretFile(filepath.Join(dir, filepath.Base(CredentialTarget)), "", int(hu), int(hg)); err != nil {
			return fmt.Errorf("%s: the credential's mount point in %s: %w", d.agent.Name, dir, err)
		}
		for _, s := range d.agent.Secrets {
			if s.File == "" {
				continue
			}
			e, ok := store.Agents[d.agent.Name][s.Name]
			if !ok {
				return fmt.Errorf("%s: secret %s is not in the store; apply again", d.agent.Name, s.Name)
			}
			base := filepath.Base(s.File)
			files[base] = true
			if err := writeSecretFile(filepath.Join(dir, base), e.Value, int(hu), int(hg)); err != nil {
				return fmt.Errorf("%s: writing secret %s to %s: %w", d.agent.Name, s.Name, dir, err)
			}
		}
		if ents, err := os.ReadDir(dir); err == nil {
			for _, ent := range ents {
				if !files[ent.Name()] {
					os.Remove(filepath.Join(dir, ent.Name()))
				}
			}
		}
		if err := os.Lchown(dir, int(hu), int(hg)); err != nil {
			return fmt.Errorf("%s: giving its secrets directory to host uid %d: %w (file secrets need runner to be able to chown, i.e. to run as root; use inject otherwise)", d.agent.Name, hu, err)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			return err
		}
	}
	ents, _ := os.ReadDir(root)
	for _, ent := range ents {
		if !keep[ent.Name()] {
			os.RemoveAll(filepath.Join(root, ent.Name()))
		}
	}
	return nil
}

// writeSecretFile replaces path with value, 0400 and owned by uid:gid,
// atomically (a rename in the same directory, which the container's bind
// mount of the directory sees).
func writeSecretFile(path, value string, uid, gid int) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == value {
		if fi, err := os.Lstat(path); err == nil {
			if st, ok := fi.Sys().(*unix.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid && fi.Mode().Perm() == 0o400 {
				return nil
			}
		}
	}
	tmp := path + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chown(uid, gid); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("giving it to host uid %d: %w (file secrets need runner to be able to chown, i.e. to run as root; use inject otherwise)", uid, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// removeFileSecrets is destroy's: the run's tmpfs directory goes.
func removeFileSecrets(st state.Run) error {
	return os.RemoveAll(fileSecretsRoot(st))
}
