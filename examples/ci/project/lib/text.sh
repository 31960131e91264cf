# A tiny "library" under test: text helpers in POSIX sh.

# slugify TEXT: lower case, runs of anything but [a-z0-9] become one "-",
# no leading or trailing "-".
slugify() {
	printf '%s\n' "$1" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9][^a-z0-9]*/-/g' -e 's/^-//' -e 's/-$//'
}

# word_count TEXT: the number of whitespace-separated words.
word_count() {
	printf '%s\n' "$1" | wc -w | tr -d ' '
}

# is_semver TEXT: exit 0 if TEXT is MAJOR.MINOR.PATCH.
is_semver() {
	printf '%s\n' "$1" | grep -Eq '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'
}
