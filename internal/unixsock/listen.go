// Package unixsock listens on the unix sockets runner's host services serve
// (the relay's, the egress proxy's): one way to take over a socket file a
// crashed server left behind without stealing one a live server holds.
package unixsock

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// MaxPath is the longest socket path the kernel accepts (sun_path less its NUL).
const MaxPath = 107

// InUseError is a socket another live server answers on.
type InUseError struct{ Path string }

func (e *InUseError) Error() string {
	return fmt.Sprintf("another process is serving %s: stop it first", e.Path)
}

// Listen serves a unix socket at path with the given mode. A socket file
// nobody answers on is replaced; one that answers is an *InUseError, and so is
// anything at path that is not a socket. Between listen and chmod the
// umask decides: the socket's directory is what keeps others out meanwhile.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	if len(path) > MaxPath {
		return nil, fmt.Errorf("socket path %s is %d bytes, unix sockets allow %d: use a shorter directory", path, len(path), MaxPath)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, &InUseError{Path: path}
		}
		os.Remove(path) // left by a server that crashed
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
