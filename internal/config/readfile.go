package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ReadProblem says why path could not be read, and what to do, in words
// an operator can act on: not found, permission denied, a directory. It
// starts with the path: "agents.hcl: no such file (...)".
func ReadProblem(path string, err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s: no such file (a relative path is relative to the current directory)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s: permission denied for uid %d (check its mode and owner with `ls -l %s`)", path, os.Getuid(), path)
	case errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "is a directory":
		return fmt.Sprintf("%s: it is a directory; name the config file in it", path)
	}
	return fmt.Sprintf("%s: %v", path, err)
}

// readConfigFile reads an agents file, refusing a directory up front (a
// read of one fails with a less helpful error on some systems).
func readConfigFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("is a directory")}
	}
	return os.ReadFile(path)
}
