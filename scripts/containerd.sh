#!/usr/bin/env bash
# Start (or verify) a system containerd for engine = "containerd", and the
# account whose subordinate ids runner gives each run's user namespace.
#
# Usage (as root):  eval "$(scripts/containerd.sh)"
# Progress goes to stderr. The last stdout line is always
#     export CONTAINERD_ADDRESS=/run/containerd/containerd.sock
# Idempotent: a containerd that already answers there is only verified.
#
# Docker runs a private containerd of its own under /var/run/docker/containerd;
# this one is separate: config /run/containerd/runner-config.toml, state
# /run/containerd, data /var/lib/containerd, log /var/log/containerd-ci.log.
# The CRI plugin is disabled (runner needs no Kubernetes and no CNI).
#
# Environment knobs (defaults in brackets):
#   CONTAINERD_SOCK [/run/containerd/containerd.sock]
#   USERNS_USER [runner-userns]: the account runner allocates ranges from
#   USERNS_RUNS [64]: how many runs can hold a 65536-id range at once
#   CONTAINERD_WAIT [30]: seconds to wait for the daemon to answer
set -euo pipefail

sock=${CONTAINERD_SOCK:-/run/containerd/containerd.sock}
user=${USERNS_USER:-runner-userns}
runs=${USERNS_RUNS:-64}
wait_s=${CONTAINERD_WAIT:-30}

log() { echo "containerd: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (I start a system daemon and create an account)"

missing=()
for pair in containerd:containerd ctr:containerd runc:runc usermod:passwd; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# --- the user-namespace account ----------------------------------------------
# A system account that never logs in; only its /etc/subuid and /etc/subgid
# ranges matter. They lie past every existing range, so no other user's
# namespaces share host ids with runner's.
if ! id -u "$user" >/dev/null 2>&1; then
	log "creating system user $user"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$user" >&2
fi
count=$((runs * 65536))
for f in /etc/subuid /etc/subgid; do
	touch "$f"
	if ! grep -q "^$user:" "$f"; then
		start=$(awk -F: 'BEGIN { m = 1000000 } { e = $2 + $3; if (e > m) m = e } END { print m }' "$f")
		# Round up to a multiple of 65536.
		start=$(( (start + 65535) / 65536 * 65536 ))
		log "giving $user $f range $start+$count"
		echo "$user:$start:$count" >>"$f"
	fi
done

# --- the daemon ---------------------------------------------------------------
answers() { timeout 5 ctr --address "$sock" version >/dev/null 2>&1; }
if answers; then
	log "already answering at $sock"
else
	install -d -m 0711 /run/containerd /var/lib/containerd
	cfg=/run/containerd/runner-config.toml
	cat >"$cfg" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
EOF
	log "starting containerd (log: /var/log/containerd-ci.log)"
	setsid containerd --config "$cfg" </dev/null >>/var/log/containerd-ci.log 2>&1 &
	pid=$!
	ok=
	for _ in $(seq "$wait_s"); do
		if answers; then ok=1; break; fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
	done
	if [ -z "$ok" ]; then
		tail -n 30 /var/log/containerd-ci.log >&2
		die "containerd did not answer at $sock"
	fi
fi
log "$(ctr --address "$sock" version 2>/dev/null | awk '/Server:/ { s = 1 } s && /Version:/ { print "server " $2; exit }')"
echo "export CONTAINERD_ADDRESS=$sock"
