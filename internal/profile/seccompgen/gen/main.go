//go:build linux

// Command gen writes runner's seccomp profile (seccompgen.Generate) to a file.
// It is run by `go generate ./internal/profile/...`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/runner-dev/runner/internal/profile/seccompgen"
)

func main() {
	out := flag.String("o", "", "file to write the profile to (required)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -o FILE")
		os.Exit(2)
	}
	b, err := seccompgen.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
