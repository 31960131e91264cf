package config

import (
	"fmt"
	"github.com/runner-dev/runner/internal/bytesize"
	"strconv"
	"strings"
)

// unitless reports whether a size was written as a bare number of bytes.
func unitless(s string) bool { return bytesize.Unitless(s) }

// parseSize reads "256MiB", "1GB", "4096B" or "4096" as a number of bytes.
func parseSize(s string) (int64, error) { return bytesize.Parse(s, "512MiB") }

// formatSize writes n in the largest binary unit that divides it exactly.
func formatSize(n int64) string { return bytesize.Format(n) }

// parseUser checks a user value and returns it as "uid:gid". A bare "uid"
// becomes "uid:uid": without a gid, engines pick the image's group for that
// uid, which is gid 0 (root) when the image has no entry for it.
// On error it returns a summary and a detail for the diagnostic.
func parseUser(s string) (user, summary, detail string) {
	uidStr, gidStr, hasGid := strings.Cut(s, ":")
	if !hasGid {
		gidStr = uidStr
	}
	uid, err1 := parseID(uidStr)
	gid, err2 := parseID(gidStr)
	switch {
	case err1 != nil || err2 != nil:
		return "", "Invalid user", fmt.Sprintf(`user must be a numeric "UID" or "UID:GID" from 1 to %d, e.g. %q; got %q. Names are not accepted: they would be looked up in the image.`, maxUserID, ExampleUser, s)
	case uid == 0:
		return "", "Agent would run as root", fmt.Sprintf(`uid 0 is root, and agents never run as root. Use a non-zero uid, e.g. %q.`, ExampleUser)
	case gid == 0:
		return "", "Agent would run in the root group", fmt.Sprintf(`gid 0 is the root group, which can read and write root's group-owned files. Use a non-zero gid, e.g. %q.`, ExampleUser)
	}
	return fmt.Sprintf("%d:%d", uid, gid), "", ""
}

// parseID accepts only plain decimal digits: no sign, no spaces, no names.
func parseID(s string) (uint64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxUserID {
		return 0, fmt.Errorf("out of range: %q", s)
	}
	return n, nil
}
