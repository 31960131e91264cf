#!/bin/sh
# The project's test suite: runs every tests/test_*.sh against lib/, prints
# TAP, and exits 1 if any assertion failed. It only reads /workspace; the
# report goes to stdout and, if $REPORT_DIR is writable, to
# $REPORT_DIR/report.tap (see ../README.md).
set -u
here=$(dirname "$0")
. "$here/lib/text.sh"

n=0
failed=0
out=$(mktemp)

ok() { n=$((n + 1)); echo "ok $n - $1" >>"$out"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1" >>"$out"; echo "#   $2" >>"$out"; }

assert_eq() {
	if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3" "got '$1', want '$2'"; fi
}
assert_ok() {
	if eval "$1"; then ok "$2"; else not_ok "$2" "'$1' failed"; fi
}
assert_fails() {
	if eval "$1"; then not_ok "$2" "'$1' succeeded"; else ok "$2"; fi
}

for t in "$here"/tests/test_*.sh; do
	echo "# $(basename "$t")" >>"$out"
	. "$t"
done

{
	echo "TAP version 13"
	echo "1..$n"
	cat "$out"
	echo "# $((n - failed)) passed, $failed failed"
} >"$out.tap"
cat "$out.tap"

dir=${REPORT_DIR:-}
if [ -n "$dir" ]; then
	if cp "$out.tap" "$dir/report.tap" 2>/dev/null; then
		echo "# report written to $dir/report.tap"
	else
		echo "# $dir is not writable by uid $(id -u): no report file (chmod 0777 examples/ci/out)"
	fi
fi
rm -f "$out" "$out.tap"
[ "$failed" -eq 0 ]
