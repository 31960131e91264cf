#!/usr/bin/env bash
# Register gVisor (runsc) as a runtime of the machine's root dockerd, so that
# `runtime = "runsc"` runs agents on gVisor's user-space kernel.
#
# Usage (as root):  scripts/gvisor-docker.sh
# Installs Debian's runsc (and jq) when missing, merges a "runsc" entry into
# /etc/docker/daemon.json's "runtimes" (every other key and runtime is kept),
# and sends dockerd SIGHUP, which reloads runtimes without a restart. It
# never starts or restarts dockerd. Idempotent: when `docker info` already
# lists runsc with these arguments, nothing changes.
#
# The arguments, and why:
#   --platform=ptrace  works without /dev/kvm (these machines are VMs).
#   --host-uds=open    the agent connects to host sockets runner bind-mounts
#                      for it (the relay's, the egress proxy's); without it
#                      gVisor refuses every host Unix socket. "open" only:
#                      it cannot create sockets on the host.
#   --oci-seccomp      apply the container's seccomp profile (policies/) in
#                      the sandbox too; without it runsc drops the profile.
set -euo pipefail

conf=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
log() { echo "gvisor-docker: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (I edit $conf and signal dockerd)"

missing=()
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
runsc_path=$(command -v runsc)
want=$(jq -cn --arg p "$runsc_path" \
	'{path: $p, runtimeArgs: ["--platform=ptrace", "--network=none", "--host-uds=open", "--oci-seccomp"]}')

have=$(timeout 10 docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null) ||
	die "the root dockerd does not answer (start it first)"
if [ "$(jq -cS . <<<"$have" 2>/dev/null)" = "$(jq -cS . <<<"$want")" ]; then
	log "runsc already registered: $have"
	exit 0
fi

# Merge: keep everything else in daemon.json (storage driver, log options,
# other runtimes); replace only runtimes.runsc. Write beside it, then rename.
install -d -m 0755 "$(dirname "$conf")"
[ -s "$conf" ] || echo '{}' >"$conf"
jq -e 'type == "object"' "$conf" >/dev/null || die "$conf is not a JSON object; fix it by hand"
tmp=$(mktemp "$conf.XXXXXX")
jq --argjson r "$want" '.runtimes = ((.runtimes // {}) + {runsc: $r})' "$conf" >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$conf"
log "registered runsc in $conf: $want"

# The root daemon's pid file; else root's dockerd (not a rootless one).
pid=$(cat /var/run/docker.pid 2>/dev/null || true)
[ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = dockerd ] || pid=$(pgrep -x -u 0 dockerd | head -n 1 || true)
[ -n "$pid" ] || die "cannot find the root dockerd's pid to send SIGHUP"
kill -HUP "$pid"
for _ in $(seq 20); do
	have=$(timeout 10 docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null || true)
	if [ "$(jq -cS . <<<"$have" 2>/dev/null)" = "$(jq -cS . <<<"$want")" ]; then
		log "dockerd $pid reloaded: runsc is $have"
		exit 0
	fi
	sleep 0.5
done
die "dockerd $pid did not pick up runsc after SIGHUP (docker info says ${have:-nothing}); see its log"
