//go:build !runnertest

package runner

import "crypto/x509"

// testInjectRoots is nil in every build users run: the injector verifies
// destinations against the host's system roots, always. A runnertest
// build (injectroots_runnertest.go) may add a test server's CA.
func testInjectRoots() *x509.CertPool { return nil }
