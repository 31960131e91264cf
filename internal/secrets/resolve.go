package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/termsafe"
)

// MaxValue bounds a secret's value: an API key is short, a deploy key a
// few KiB; anything larger is not a secret file but a mistake.
const MaxValue = 64 << 10

// Resolver reads secret sources. The zero value uses the process's
// environment and file system.
type Resolver struct {
	// LookupEnv is os.LookupEnv unless set (tests).
	LookupEnv func(string) (string, bool)
}

// SourceError is a source that could not be read: where it is declared,
// and why, never the value.
type SourceError struct {
	Agent, Secret string
	Range         hcl.Range
	Summary       string
	Detail        string
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("%s:%d:%d: agent %q, secret %q: %s", e.Range.Filename, e.Range.Start.Line, e.Range.Start.Column, e.Agent, e.Secret, e.Detail)
}

// Diagnostic is the error as the config's diagnostics print it.
func (e *SourceError) Diagnostic() *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: e.Summary, Detail: e.Detail, Subject: e.Range.Ptr()}
}

// Value reads sec's source once.
func (r Resolver) Value(ctx context.Context, agent string, sec config.Secret) (string, error) {
	fail := func(summary, format string, args ...any) error {
		return &SourceError{Agent: agent, Secret: sec.Name, Range: sec.Source.Range, Summary: summary, Detail: fmt.Sprintf(format, args...)}
	}
	src := sec.Source
	var v string
	switch src.Kind {
	case config.SourceEnv:
		look := r.LookupEnv
		if look == nil {
			look = os.LookupEnv
		}
		val, ok := look(src.Env)
		if !ok || val == "" {
			return "", fail("Missing environment variable", "from_env = %q, but %s is not set (or empty) in the environment runner runs in. Export it (export %s=...), or use another source.", src.Env, src.Env, src.Env)
		}
		v = val
	case config.SourceFile:
		val, err := readFile(src.File)
		if err != nil {
			return "", fail("Cannot read secret file", "from_file %s: %s.", src.File, err)
		}
		v = val
	case config.SourceCommand:
		val, err := runCommand(ctx, src.Command, src.Timeout)
		if err != nil {
			return "", fail("Secret command failed", "from_command %q %s.", src.Command, err)
		}
		v = val
	case config.SourceValue:
		v = src.Value.Reveal()
	default:
		return "", fail("Unknown secret source", "source kind %q is not known to this runner", src.Kind)
	}
	if v == "" {
		return "", fail("Empty secret", "The %s source gave an empty value. Check the source.", src.Kind)
	}
	if sec.Inject != nil {
		// It goes into an HTTP header: a line break would add headers of
		// the agent's making, and control bytes are not valid there.
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return "", fail("Secret not valid in a header", "The value from %s holds a control character (byte %d; the value is not shown), so it cannot be sent in the %s header. Check the source.", src.Kind, i, sec.Inject.Header)
			}
		}
	}
	return v, nil
}

// readFile reads a regular file of at most MaxValue bytes, without one
// trailing newline (editors add it; keys do not end with one).
func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", errors.Unwrap(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxValue+1))
	if err != nil {
		return "", err
	}
	if len(data) > MaxValue {
		return "", fmt.Errorf("larger than %d KiB; a secret is a key or a token", MaxValue>>10)
	}
	return trimNewline(string(data)), nil
}

func trimNewline(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// runCommand runs argv (no shell) with stdin empty, and returns its
// standard output without the trailing newline. Its standard error is
// shown on failure, cut short and filtered: it is the command's message,
// not the value.
func runCommand(ctx context.Context, argv []string, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = config.DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb limitedBuffer
	out.max, errb.max = MaxValue+1, 2048
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return "", fmt.Errorf("did not finish within %s (timeout); check that it does not wait for input, or raise timeout", timeout)
	case errors.Is(err, exec.ErrNotFound):
		return "", fmt.Errorf("cannot run: %s is not found in PATH", argv[0])
	case err != nil:
		msg := strings.TrimSpace(termsafe.Text(string(errb.Bytes())))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg != "" {
			msg = ": " + msg
		}
		return "", fmt.Errorf("failed (%v)%s", err, msg)
	case out.Len() > MaxValue:
		return "", fmt.Errorf("printed more than %d KiB; a secret is a key or a token", MaxValue>>10)
	case !utf8.Valid(out.Bytes()):
		return "", fmt.Errorf("printed bytes that are not UTF-8 text")
	}
	return trimNewline(out.String()), nil
}

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.Len(); room < len(p) {
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return n, nil
}

// Values are resolved secrets: agent -> secret name -> value.
type Values map[string]map[string]string

// All reads every secret of cfg, each source once even when counted agents
// share it, and reports every failure (file:line:col, never a value).
func (r Resolver) All(ctx context.Context, cfg *config.Config) (Values, []*SourceError) {
	out := Values{}
	cache := map[string]string{}
	var errs []*SourceError
	for _, a := range cfg.Agents {
		for _, sec := range a.Secrets {
			key := fmt.Sprintf("%s\x00%s\x00%s\x00%q\x00%v", sec.Source.Kind, sec.Source.Env, sec.Source.File, sec.Source.Command, sec.Source.Range)
			v, ok := cache[key]
			if !ok || sec.Source.Kind == config.SourceValue {
				var err error
				v, err = r.Value(ctx, a.Name, sec)
				if err != nil {
					var se *SourceError
					if errors.As(err, &se) {
						errs = append(errs, se)
					}
					continue
				}
				cache[key] = v
			}
			if out[a.Name] == nil {
				out[a.Name] = map[string]string{}
			}
			out[a.Name][sec.Name] = v
		}
	}
	return out, errs
}

// Reread reads an entry's source again (a refresh): from_command and
// from_file only; the value is checked as Value checks it.
func (r Resolver) Reread(ctx context.Context, agent, name string, e Entry) (string, error) {
	sec := config.Secret{Name: name, Source: config.SecretSource{Kind: e.Source.Kind, Env: e.Source.Env, File: e.Source.File, Command: e.Source.Command, Timeout: e.Source.Timeout}}
	if e.Kind == KindInject {
		sec.Inject = &config.Inject{Header: e.Header}
	}
	return r.Value(ctx, agent, sec)
}
