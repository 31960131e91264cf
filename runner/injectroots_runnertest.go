//go:build runnertest

package runner

import (
	"crypto/x509"
	"os"
)

// TEST-ONLY. Compiled only with `-tags runnertest` (the e2e suite's build
// of runner); `make build` and releases use injectroots.go, which has no
// switch. Tests may not reach the internet, so their HTTPS servers have
// certificates of a test CA: RUNNER_TEST_INJECT_ROOTS names a PEM file
// whose certificates the injector trusts for destinations, in addition to
// the system roots (a certificate neither signed is still refused, which
// the e2e test checks).
const testInjectRootsEnv = "RUNNER_TEST_INJECT_ROOTS"

func testInjectRoots() *x509.CertPool {
	path := os.Getenv(testInjectRootsEnv)
	if path == "" {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if pem, err := os.ReadFile(path); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return pool
}
