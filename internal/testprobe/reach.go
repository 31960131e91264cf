package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// reach tries what a process of some uid could do to another agent: each
// argument is "read:PATH" (read a file) or "dial:PATH" (connect to a unix
// socket) or "size:PATH" (read a file and say how many bytes it held,
// "N bytes"). The result maps each argument to "ok" or the error. The tests
// run it on the host as an agent's uid, and inside containers.
func reach(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		kind, p, _ := strings.Cut(a, ":")
		switch kind {
		case "read":
			_, err := os.ReadFile(p)
			out[a] = errString(err)
		case "size":
			b, err := os.ReadFile(p)
			if err == nil {
				out[a] = strconv.Itoa(len(b)) + " bytes"
			} else {
				out[a] = err.Error()
			}
		case "dial":
			c, err := net.DialTimeout("unix", p, 2*time.Second)
			if err == nil {
				c.Close()
			}
			out[a] = errString(err)
		default:
			out[a] = "unknown kind " + kind
		}
	}
	return out
}
