package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// httpHeader sends GET url with header set to the value of environment
// variable envVar (or to the text after "=" when envVar starts with "="),
// trusting the system roots as SSL_CERT_FILE sets them plus caFile.
func httpHeader(url, header, envVar, caFile string) HTTPResult {
	value, ok := strings.CutPrefix(envVar, "=")
	if !ok {
		value = os.Getenv(envVar)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return HTTPResult{Err: err.Error()}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return HTTPResult{Err: err.Error()}
		}
		pool.AppendCertsFromPEM(pem)
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return HTTPResult{Err: err.Error()}
	}
	req.Header.Set(header, value)
	resp, err := c.Do(req)
	if err != nil {
		return HTTPResult{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return HTTPResult{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
}

// environs is every process's environment the probe can read, joined.
func environs() map[string]any {
	var all []string
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n++
		all = append(all, strings.ReplaceAll(string(b), "\x00", "\n"))
	}
	return map[string]any{"read": n, "of": len(dirs), "env": strings.Join(all, "\n")}
}

// secretFile reports what the agent can do with a file secret.
func secretFile(path string) map[string]any {
	out := map[string]any{}
	b, err := os.ReadFile(path)
	out["content"], out["read_err"] = string(b), errString(err)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil {
		out["mode"], out["uid"], out["gid"] = st.Mode&0o7777, st.Uid, st.Gid
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(path, &fs); err == nil {
		out["tmpfs"] = fs.Type == 0x01021994
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	out["write_err"] = errString(err)
	out["chmod_err"] = errString(os.Chmod(path, 0o600))
	out["create_err"] = errString(os.WriteFile(filepath.Join(filepath.Dir(path), "new"), []byte("x"), 0o600))
	out["uid_self"] = os.Getuid()
	return out
}
