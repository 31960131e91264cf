// Package bytesize reads and writes sizes as runner's users write them:
// a whole number and a case-sensitive unit ("512MiB", "1GB", "4096B",
// "4096"), so "mb" can never be misread as MiB or MB. The config file, the
// audit log's cap and the transcripts' cap all take this one syntax.
package bytesize

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
)

var units = map[string]int64{
	"":    1,
	"B":   1,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
	"KB":  1000,
	"MB":  1000 * 1000,
	"GB":  1000 * 1000 * 1000,
}

var syntax = regexp.MustCompile(`^([0-9]+) ?([A-Za-z]*)$`)

// Parse reads s as a number of bytes; example is the size its errors
// suggest (e.g. "512MiB").
func Parse(s, example string) (int64, error) {
	m := syntax.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf(`%q is not a size: use a whole number and a unit (B, KiB, MiB, GiB, KB, MB, GB), e.g. %q`, s, example)
	}
	mult, ok := units[m[2]]
	if !ok {
		return 0, fmt.Errorf(`unknown unit %q in %q: use B, KiB, MiB, GiB, KB, MB or GB, e.g. %q`, m[2], s, example)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// Unitless reports whether s is a bare number of bytes.
func Unitless(s string) bool {
	m := syntax.FindStringSubmatch(s)
	return m != nil && m[2] == ""
}

// Format writes n in the largest binary unit that divides it exactly.
func Format(n int64) string {
	for _, u := range []string{"GiB", "MiB", "KiB"} {
		if n != 0 && n%units[u] == 0 {
			return fmt.Sprintf("%d%s", n/units[u], u)
		}
	}
	return fmt.Sprintf("%dB", n)
}
