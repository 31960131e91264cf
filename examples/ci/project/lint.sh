#!/bin/sh
# A second check, run by its own agent in parallel: every shell script parses
# (sh -n) and has no trailing whitespace. Exits 1 on the first kind of problem.
here=$(dirname "$0")
status=0
for f in "$here"/*.sh "$here"/lib/*.sh "$here"/tests/*.sh; do
	if ! sh -n "$f"; then
		echo "lint: $f does not parse"
		status=1
	fi
	if grep -n '[[:space:]]$' "$f"; then
		echo "lint: $f has trailing whitespace (lines above)"
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "lint: $(ls "$here"/*.sh "$here"/lib/*.sh "$here"/tests/*.sh | wc -l | tr -d ' ') scripts clean"
exit "$status"
