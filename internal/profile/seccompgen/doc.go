// Package seccompgen builds runner's seccomp profile from Docker's default
// (github.com/moby/profiles/seccomp) by removing what a capability-free agent
// container never needs. Its output is checked in as policies/seccomp.json and
// embedded into the binary by package policies; a test keeps the two in sync.
//
// The generator only builds on Linux because the upstream default profile
// does.
package seccompgen

//go:generate go run ./gen -o ../../../policies/seccomp.json
