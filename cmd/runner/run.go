package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/runner-dev/runner/runner"
)

// cmdRun is CI mode: apply, wait for every agent's command, print what they
// printed, destroy, and exit with the first failing status. Results go to
// stdout, progress to stderr; no terminal is needed.
//
// Exit codes: 0 all agents exited 0; otherwise the status of the first
// failing agent by name (1 if a signal killed it); 124 timeout; 125 the job
// could not run or be cleaned up (config, engine, apply, already applied);
// 130 SIGINT, 143 SIGTERM (after cleaning up); 2 usage.
func cmdRun(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	// Which signal cancelled ctx decides between 130 and 143; a channel of
	// our own gets every signal the CLI's context does.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var (
		timeout   time.Duration
		output    string
		junitFile string
	)
	cfg, _, err := fileCommand(g, "run", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "timeout", 30*time.Minute, "stop everything and exit 124 after this long (0: no limit)")
		fs.StringVar(&output, "o", "text", "result format on stdout: text, json or junit")
		fs.StringVar(&junitFile, "junit-file", "", "also write a JUnit XML report to this file")
		lockFlag(g)(fs)
	}, 0, "")
	if err == nil {
		err = checkSources(g, cfg, stderr)
	}
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) && ee.code == 1 {
			return exitError{runner.ExitJobFailed} // the config did not load
		}
		return err
	}
	if output != "text" && output != "json" && output != "junit" {
		fmt.Fprintf(stderr, "Error: -o %q: use text, json or junit\n", output)
		return exitError{2}
	}
	if timeout < 0 {
		fmt.Fprintf(stderr, "Error: --timeout %s: use a duration >= 0\n", timeout)
		return exitError{2}
	}
	if junitFile != "" {
		// Fail before the job runs, not after, if the report cannot be written.
		if _, err := os.Stat(filepath.Dir(junitFile)); err != nil {
			fmt.Fprintf(stderr, "Error: --junit-file %s: %v\n", junitFile, err)
			return exitError{2}
		}
	}
	eng, err := connect(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return exitError{runner.ExitJobFailed}
	}
	defer eng.Close()

	fmt.Fprintf(stderr, "Running job %q from %s on %s (timeout %s)\n", cfg.Run.Name, cfg.File, eng.Describe(), timeoutText(timeout))
	res, jobErr := newRunner(g, eng, stderr).RunJob(ctx, cfg, runner.JobOptions{Timeout: timeout})
	if res.Stopped && res.ExitCode == runner.ExitSIGINT {
		res.ExitCode = exitForSignal(ctx, sigs)
	}

	if len(res.Agents) > 0 || output != "text" {
		var werr error
		switch output {
		case "json":
			werr = res.WriteJSON(stdout)
		case "junit":
			werr = res.WriteJUnit(stdout)
		default:
			werr = res.WriteText(stdout)
		}
		if werr != nil {
			fmt.Fprintln(stderr, "Error: writing the result:", werr)
		}
	}
	if junitFile != "" && len(res.Agents) > 0 {
		if err := writeJUnitFile(junitFile, res); err != nil {
			fmt.Fprintln(stderr, "Error:", err)
			if res.ExitCode == 0 {
				res.ExitCode = runner.ExitJobFailed
			}
		} else {
			fmt.Fprintf(stderr, "JUnit report written to %s\n", junitFile)
		}
	}
	if jobErr != nil {
		fmt.Fprintln(stderr, "Error:", jobErr)
		if res.ExitCode == 0 {
			res.ExitCode = runner.ExitJobFailed
		}
	}
	if res.ExitCode != 0 {
		return exitError{res.ExitCode}
	}
	return nil
}

func timeoutText(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

// exitForSignal is 143 if SIGTERM stopped the job, else 130.
func exitForSignal(ctx context.Context, sigs <-chan os.Signal) int {
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				return runner.ExitSIGTERM
			}
			if s == os.Interrupt {
				return runner.ExitSIGINT
			}
		default:
			// signal.NotifyContext's cause reads "terminated signal received".
			if c := context.Cause(ctx); c != nil && strings.HasPrefix(c.Error(), syscall.SIGTERM.String()) {
				return runner.ExitSIGTERM
			}
			return runner.ExitSIGINT
		}
	}
}

// writeJUnitFile writes the report next to its final name and renames it,
// so a CI step never reads half a file.
func writeJUnitFile(path string, res runner.JobResult) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".junit-*.xml")
	if err != nil {
		return fmt.Errorf("--junit-file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := res.WriteJUnit(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("--junit-file %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--junit-file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--junit-file %s: %w", path, err)
	}
	return nil
}
