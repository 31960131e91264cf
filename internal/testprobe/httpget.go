package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// HTTPResult is what http-get saw.
type HTTPResult struct {
	Status int    `json:"status"` // 0 if no response
	Body   string `json:"body"`   // at most 4 KiB
	Err    string `json:"err"`
}

// httpGet fetches url as any HTTP client in the container would: through
// HTTP_PROXY/HTTPS_PROXY (ProxyFromEnvironment; https:// by CONNECT).
// caFile, if not "", is the PEM the server's certificate must chain to.
func httpGet(url, caFile string) HTTPResult {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return HTTPResult{Err: err.Error()}
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return HTTPResult{Err: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return HTTPResult{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
}

// tcpDial connects to addr directly, without any proxy.
func tcpDial(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		c.Close()
	}
	return errString(err)
}
