#!/usr/bin/env bash
# Runs every fuzz target of the module (each `func FuzzX` in a _test.go file)
# for a short time: FUZZTIME each, default 10s. Trust boundaries (the relay's
# frames, the sanitiser, the shim's paste filter, egress rules and requests)
# get a fresh corpus run on every CI run; a crasher fails the run and is kept
# under the package's testdata/fuzz/ for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
count=0
while IFS= read -r file; do
	dir=./$(dirname "$file")
	while IFS= read -r name; do
		echo "fuzz: $dir $name for $fuzztime"
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir"
		count=$((count + 1))
	done < <(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2)
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz')
echo "fuzz: $count targets, $fuzztime each, no crasher"
