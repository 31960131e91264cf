package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	agentOnce sync.Once
	agentDir  string
	agentBin  string
	agentErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
	os.Exit(code)
}

// staticAgent builds the real runner-agent, static, once per test binary.
func staticAgent(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not in PATH")
	}
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imgtest-agent")
		if err != nil {
			agentErr = err
			return
		}
		agentDir = dir
		agentBin = filepath.Join(dir, "runner-agent")
		cmd := exec.Command("go", "build", "-o", agentBin, "github.com/runner-dev/runner/cmd/runner-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = err
			agentBin = string(out)
		}
	})
	if agentErr != nil {
		t.Fatalf("building runner-agent: %v\n%s", agentErr, agentBin)
	}
	return agentBin
}

type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func readTar(t *testing.T, b []byte) (map[string]tarEntry, []string) {
	t.Helper()
	m := map[string]tarEntry{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		name := strings.TrimSuffix(h.Name, "/")
		if _, dup := m[name]; dup {
			t.Errorf("%s twice in the context", name)
		}
		m[name] = tarEntry{*h, data}
		order = append(order, h.Name)
	}
	return m, order
}

// resolve follows symlinks inside the tar, the way the container will.
func resolve(t *testing.T, m map[string]tarEntry, p string) tarEntry {
	t.Helper()
	for hop := 0; hop < 40; hop++ {
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := ""
		restarted := false
		for i, part := range parts {
			next := strings.TrimPrefix(cur+"/"+part, "/")
			e, ok := m["rootfs/"+next]
			if !ok {
				t.Fatalf("%s: %s missing from the image", p, "/"+next)
			}
			if e.hdr.Typeflag == tar.TypeSymlink {
				target := e.hdr.Linkname
				if !strings.HasPrefix(target, "/") {
					target = cur + "/" + target
				}
				p = filepath.Clean(strings.Join(append([]string{target}, parts[i+1:]...), "/"))
				restarted = true
				break
			}
			if e.hdr.Typeflag == tar.TypeLink {
				e = m[e.hdr.Linkname]
			}
			if i == len(parts)-1 {
				return e
			}
			cur = "/" + next
		}
		if !restarted {
			break
		}
	}
	t.Fatalf("%s: does not resolve", p)
	return tarEntry{}
}

func TestContext(t *testing.T) {
	for _, tool := range requiredTools {
		if _, ok := lookTool(tool); !ok {
			t.Skipf("%s not installed", tool)
		}
	}
	agent := staticAgent(t)
	var buf1, buf2, progress bytes.Buffer
	d1, err := Context(&buf1, agent, &progress)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Context(&buf2, agent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || !strings.HasPrefix(d1, "sha256:") || len(d1) != 71 {
		t.Errorf("digests %q and %q: want equal sha256:<hex>", d1, d2)
	}
	if sha256.Sum256(buf1.Bytes()) != sha256.Sum256(buf2.Bytes()) {
		t.Error("two contexts built from the same files differ")
	}
	if !strings.Contains(progress.String(), "collected ") || !strings.Contains(progress.String(), " MiB") {
		t.Errorf("progress = %q", progress.String())
	}
	t.Logf("progress:\n%s context: %.1f MiB", progress.String(), float64(buf1.Len())/(1<<20))

	m, order := readTar(t, buf1.Bytes())
	if order[0] != "Dockerfile" {
		t.Errorf("first entry %q, want Dockerfile", order[0])
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] && !(order[i-1] == "Dockerfile") {
			t.Errorf("entries not sorted: %q before %q", order[i-1], order[i])
		}
	}
	for name, e := range m {
		if !e.hdr.ModTime.Equal(epoch) || e.hdr.Uname != "" {
			t.Errorf("%s: mtime %v, uname %q", name, e.hdr.ModTime, e.hdr.Uname)
		}
		if e.hdr.Mode&0o6000 != 0 {
			t.Errorf("%s: setuid/setgid mode %o", name, e.hdr.Mode)
		}
	}

	df := string(m["Dockerfile"].data)
	for _, want := range []string{
		"FROM scratch\n", "COPY rootfs/ /\n", "USER 1000:1000\n", "WORKDIR /home/agent\n",
		`LABEL runner.image-digest="` + d1 + `"`,
		`ENTRYPOINT ["/usr/local/bin/runner-agent", "init", "--"]`,
		"LANG=C.UTF-8",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, df)
		}
	}

	// tmux, /bin/sh (dash), git, the loader and tmux's libraries.
	tmux := resolve(t, m, "/usr/bin/tmux")
	if tmux.hdr.Mode != 0o755 || len(tmux.data) == 0 {
		t.Errorf("tmux: mode %o, %d bytes", tmux.hdr.Mode, len(tmux.data))
	}
	if sh := resolve(t, m, "/bin/sh"); !bytes.Equal(sh.data, resolve(t, m, "/usr/bin/dash").data) {
		t.Error("/bin/sh is not dash")
	}
	tmuxPath, _ := lookTool("tmux")
	loader, _, _ := interpOf(t, tmuxPath)
	if e := resolve(t, m, loader); len(e.data) == 0 {
		t.Errorf("loader %s empty", loader)
	}
	libs, err := listLibraries(loader, tmuxPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		resolve(t, m, lib)
	}
	if _, ok := lookTool("git"); ok {
		resolve(t, m, "/usr/bin/git")
		resolve(t, m, "/usr/lib/git-core/git-upload-pack")
		resolve(t, m, "/usr/share/git-core/templates/description")
	}
	if e := resolve(t, m, AgentPath); e.hdr.Mode != 0o711 || e.hdr.Size == 0 || e.hdr.Uid != 0 {
		t.Errorf("runner-agent: %+v", e.hdr)
	}
	if e := resolve(t, m, AgentPathReadable); e.hdr.Mode != 0o755 || e.hdr.Size != resolve(t, m, AgentPath).hdr.Size || e.hdr.Uid != 0 {
		t.Errorf("gVisor's runner-agent: %+v", e.hdr)
	}
	resolve(t, m, "/lib/terminfo/t/tmux-256color")
	resolve(t, m, "/usr/lib/locale/C.utf8/LC_CTYPE")

	passwd := string(resolve(t, m, "/etc/passwd").data)
	if !strings.Contains(passwd, "\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n") || !strings.HasPrefix(passwd, "root:x:0:0:") ||
		!strings.Contains(passwd, "\nagent:x:40000:40000:agent:/home/agent:/bin/sh\n") || !strings.Contains(passwd, "\nagent:x:44095:44095:agent:/home/agent:/bin/sh\n") {
		t.Errorf("passwd = %q", passwd)
	}
	if g := string(resolve(t, m, "/etc/group").data); !strings.Contains(g, "agent:x:1000:") {
		t.Errorf("group = %q", g)
	}
	if e := m["rootfs/tmp"]; e.hdr.Typeflag != tar.TypeDir || e.hdr.Mode != 0o1777 {
		t.Errorf("/tmp: %+v", e.hdr)
	}
	if e := m["agent-home"]; e.hdr.Typeflag != tar.TypeDir || e.hdr.Uid != 1000 || e.hdr.Mode != 0o700 {
		t.Errorf("agent-home: %+v", e.hdr)
	}
}

func interpOf(t *testing.T, p string) (string, bool, error) {
	t.Helper()
	ok, err := isDynamicELF(p)
	if err != nil || !ok {
		t.Fatalf("%s: dynamic %v, %v", p, ok, err)
	}
	f, err := elfOpen(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return interp(f)
}

func TestContextRefusesDynamicAgent(t *testing.T) {
	tmux, ok := lookTool("tmux")
	if !ok {
		t.Skip("no tmux")
	}
	_, err := Context(io.Discard, tmux, nil)
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Context(io.Discard, "/etc/passwd", nil); err == nil {
		t.Fatal("accepted /etc/passwd as runner-agent")
	}
}

func TestParseList(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibtinfo.so.6 => /lib/x86_64-linux-gnu/libtinfo.so.6 (0x00007f)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
	libs, err := parseList("tmux", out)
	if err != nil || strings.Join(libs, " ") != "/lib/x86_64-linux-gnu/libtinfo.so.6 /lib64/ld-linux-x86-64.so.2" {
		t.Errorf("libs %q, err %v", libs, err)
	}
	if _, err := parseList("x", "\tlibnope.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libnope.so.1") {
		t.Errorf("err = %v", err)
	}
}

// TestWriteContext writes the context to $RUNNER_IMAGE_CONTEXT_OUT, for
// building the image by hand: docker build -t localhost/runner-agent:dev - < ctx.tar
func TestWriteContext(t *testing.T) {
	out := os.Getenv("RUNNER_IMAGE_CONTEXT_OUT")
	if out == "" {
		t.Skip("RUNNER_IMAGE_CONTEXT_OUT not set")
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var progress bytes.Buffer
	d, err := Context(f, staticAgent(t), &progress)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s%s", progress.String(), d)
}
