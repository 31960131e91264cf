package runner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/state"
)

// bgCLI is the runner CLI started in the background.
type bgCLI struct {
	cmd      *exec.Cmd
	out, err syncBuffer
	done     chan error
}

// syncBuffer is a bytes.Buffer that may be read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startCLI(t *testing.T, te *testEngine, args ...string) *bgCLI {
	t.Helper()
	b := &bgCLI{done: make(chan error, 1)}
	b.cmd = exec.Command(filepath.Join(bins, "runner"), args...)
	b.cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.err
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

func (b *bgCLI) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err
		return err
	case <-time.After(5 * time.Minute):
		t.Fatalf("%v did not finish:\n%s%s", b.cmd.Args, b.out.String(), b.err.String())
		return nil
	}
}

// lockHolder is the pid the run's lock file names (0: none).
func lockHolder(run string) int {
	st, _ := state.ForRun(run)
	b, err := os.ReadFile(filepath.Join(st.Root, "runs", "."+run+".lock"))
	if err != nil {
		return 0
	}
	var info struct{ PID int }
	json.Unmarshal(b, &info)
	return info.PID
}

// consistent asserts the run is wholly applied (n running containers, one
// supervisor with one child) or wholly destroyed (no container, no process,
// no state), and says which.
func consistent(t *testing.T, te *testEngine, run string, n int) bool {
	t.Helper()
	st, _ := state.ForRun(run)
	ids := containerIDs(t, te, run)
	svcs, legacy := hostProcs(t, run)
	var kids map[int]int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// A child whose supervisor has just been stopped may take a moment.
		if kids = childProcs(t, run); len(kids) == len(svcs) || time.Now().After(deadline) {
			break
		}
	}
	if len(ids) == 0 {
		if len(svcs)+len(legacy)+len(kids) != 0 || st.Exists() {
			t.Errorf("no container, but processes %v %v %v and state %v", svcs, legacy, kids, st.Exists())
		}
		return false
	}
	if len(ids) != n {
		t.Errorf("%d containers, want %d or none: %v", len(ids), n, ids)
	}
	for a, id := range ids {
		if obs, err := te.eng.Inspect(ctx(t), id); err != nil || obs.State != "running" {
			t.Errorf("%s: %v %+v, want running", a, err, obs.State)
		}
	}
	if len(svcs) != 1 || len(legacy) != 0 || len(kids) != 1 {
		t.Errorf("applied, with services supervisors %v, other serve processes %v, children %v: want one supervisor and one child", svcs, legacy, kids)
	}
	return true
}

// TestConcurrentOperations: a second apply while one runs fails at once
// naming the holder (pid, command, since), or with -lock-timeout waits and
// then finds nothing to do; afterwards there is exactly one host-services
// process. An apply and a destroy started together both finish, one after
// the other, and the run ends wholly applied or wholly destroyed.
func TestConcurrentOperations(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "lock")
		destroyAtEnd(t, te, run)
		_, file := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "w" {
  count   = 4
  image   = %q
  command = ["cat"]
}
`, run, te.accept, testImage))

		first := startCLI(t, te, "apply", file)
		for deadline := time.Now().Add(time.Minute); lockHolder(run) != first.cmd.Process.Pid; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the first apply never held the lock:\n%s%s", first.out.String(), first.err.String())
			}
		}
		waiter := startCLI(t, te, "apply", "-lock-timeout", "5m", file)
		_, stderr, err := cli(te, "apply", file)
		if err == nil {
			t.Fatalf("a second apply while the first runs succeeded:\n%s", stderr)
		}
		want := fmt.Sprintf("is locked by pid %d (runner apply %s) since ", first.cmd.Process.Pid, file)
		if !strings.Contains(string(stderr), want) {
			t.Errorf("the second apply's error does not name the holder (%q):\n%s", want, stderr)
		}
		if err := first.wait(t); err != nil {
			t.Fatalf("first apply: %v\n%s%s", err, first.out.String(), first.err.String())
		}
		if err := waiter.wait(t); err != nil {
			t.Fatalf("apply -lock-timeout: %v\n%s%s", err, waiter.out.String(), waiter.err.String())
		}
		if !strings.Contains(waiter.out.String(), "No changes") || !strings.Contains(waiter.out.String()+waiter.err.String(), "waiting up to 5m0s") {
			t.Errorf("apply -lock-timeout did not say it waited, then find nothing to do:\n%s%s", waiter.out.String(), waiter.err.String())
		}
		if !consistent(t, te, run, 4) {
			t.Fatal("the run is not applied after two applies")
		}

		// apply and destroy at once, several times: each ends consistent.
		for i := 0; i < 2; i++ {
			var wg sync.WaitGroup
			ops := [][]string{{"apply", "-lock-timeout", "5m", file}, {"destroy", "-auto-approve", "-lock-timeout", "5m", file}}
			if i == 1 {
				ops[0], ops[1] = ops[1], ops[0]
			}
			errs := make([]string, 2)
			for j, args := range ops {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stdout, stderr, err := cli(te, args...)
					if err != nil {
						errs[j] = fmt.Sprintf("%v: %v\n%s%s", args, err, stdout, stderr)
					}
				}()
			}
			wg.Wait()
			for _, e := range errs {
				if e != "" {
					t.Errorf("round %d: %s", i, e)
				}
			}
			consistent(t, te, run, 4)
		}
		if _, stderr, err := cli(te, "destroy", "-auto-approve", file); err != nil {
			t.Fatalf("destroy: %v\n%s", err, stderr)
		}
		if consistent(t, te, run, 4) {
			t.Error("still applied after destroy")
		}
		if h := lockHolder(run); h != 0 {
			t.Errorf("the lock file still names %d", h)
		}
	})
}
