//go:build !runnertest

package runner

import "github.com/runner-dev/runner/internal/egress/proxy"

// testEgressResolver is nil in every build users get: the egress proxy
// resolves names with the host's resolver, and no environment variable or
// flag changes that. The e2e suite builds runner with the `runnertest` tag,
// which swaps in egresstesthosts_runnertest.go (names mapped to loopback).
func testEgressResolver() proxy.Resolver { return nil }

// testEgressDialer is nil too: the proxy dials the address it resolved.
func testEgressDialer() proxy.Dialer { return nil }

// testEgressHosts is what doctor reports of the test-only resolver: never
// in use in this build.
func testEgressHosts() string { return "" }
