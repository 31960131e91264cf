// Package names holds the one pattern that run and agent names must match.
// Names end up in container names, labels, tmux targets and file paths, so a
// strict pattern here is what keeps every one of those uses safe.
package names

import (
	"fmt"
	"regexp"
)

// Pattern is the rule for run and agent names.
const Pattern = `^[a-z][a-z0-9-]{0,39}$`

var re = regexp.MustCompile(Pattern)

// Valid reports whether s is an acceptable run or agent name.
func Valid(s string) bool { return re.MatchString(s) }

// Check returns an error that says what is wrong with name and what to do.
func Check(kind, name string) error {
	if Valid(name) {
		return nil
	}
	return fmt.Errorf("invalid %s name %q: use 1-40 characters, lowercase letters, digits and '-', starting with a letter (%s)", kind, name, Pattern)
}
