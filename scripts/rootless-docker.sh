#!/usr/bin/env bash
# Start (or verify) a rootless Docker daemon owned by an unprivileged user, so
# the engine tests can also run where container uid 0 is not host uid 0.
#
# Usage (as root):  eval "$(scripts/rootless-docker.sh)"
#                   scripts/rootless-docker.sh [FILE]
# Progress goes to stderr. The last stdout line is always
#     export DOCKER_HOST=unix:///run/user/<uid>/docker.sock
# and, when FILE is given, that line is also written to FILE.
# Idempotent: if the daemon already answers it is only verified.
# On failure the tail of the daemon log is printed and the exit status is 1.
#
# Environment knobs (defaults in brackets):
#   ROOTLESS_USER [runner-ci]  ROOTLESS_UID [1500, or any free uid if taken]
#   ROOTLESS_STORAGE_DRIVERS ["overlay2 fuse-overlayfs vfs"]: tried in order
#   ROOTLESS_WAIT [60]: seconds to wait for each start attempt
set -euo pipefail

user=${ROOTLESS_USER:-runner-ci}
want_uid=${ROOTLESS_UID:-1500}
drivers=${ROOTLESS_STORAGE_DRIVERS:-overlay2 fuse-overlayfs vfs}
wait_s=${ROOTLESS_WAIT:-60}
out_file=${1:-}

log() { echo "rootless-docker: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (I create a user and start its daemon)"

# --- packages -----------------------------------------------------------------
missing=()
for pair in rootlesskit:rootlesskit newuidmap:uidmap slirp4netns:slirp4netns \
            fuse-overlayfs:fuse-overlayfs dockerd:docker.io iptables:iptables; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
rootless_sh=$(command -v dockerd-rootless.sh 2>/dev/null ||
	echo /usr/share/docker.io/contrib/dockerd-rootless.sh)
[ -x "$rootless_sh" ] || die "dockerd-rootless.sh not found (expected in $rootless_sh)"

# --- user and subordinate id ranges --------------------------------------------
if ! id -u "$user" >/dev/null 2>&1; then
	uid_opt=()
	getent passwd "$want_uid" >/dev/null || getent group "$want_uid" >/dev/null ||
		uid_opt=(--uid "$want_uid")
	group_opt=(--user-group)
	getent group "$user" >/dev/null && group_opt=(--gid "$user")
	log "creating user $user"
	useradd --create-home --shell /bin/bash "${group_opt[@]}" "${uid_opt[@]}" "$user" >&2
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)

# A range past every existing one, so two users never share host ids.
add_subids() { # $1 = /etc/subuid or /etc/subgid
	grep -q "^$user:" "$1" 2>/dev/null && return 0
	start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$1" 2>/dev/null || echo 100000)
	echo "$user:$start:65536" >>"$1"
	log "added $user:$start:65536 to $1"
}
add_subids /etc/subuid
add_subids /etc/subgid

# slirp4netns opens /dev/net/tun and fuse-overlayfs /dev/fuse as the user; some
# hosts ship them 0600. Both are designed to be world-usable.
for dev in /dev/net/tun /dev/fuse; do
	[ -c "$dev" ] && [ "$(stat -c %a "$dev")" != 666 ] && chmod 0666 "$dev" && log "chmod 0666 $dev"
done

# --- runtime dir -----------------------------------------------------------------
run_dir=/run/user/$uid
sock=$run_dir/docker.sock
host_url=unix://$sock
install -d -m 0700 -o "$uid" -g "$gid" "$run_dir" # also fixes an existing one
data_root=$home/.local/share/docker
daemon_log=$home/dockerd-rootless.log

finish() {
	[ -n "$out_file" ] && echo "export DOCKER_HOST=$host_url" >"$out_file"
	echo "export DOCKER_HOST=$host_url"
	exit 0
}

# Answers, and really is rootless (not some other daemon on that path).
healthy() {
	local so
	so=$(timeout 10 docker -H "$host_url" info --format '{{json .SecurityOptions}}' 2>/dev/null) || return 1
	case $so in *rootless*) return 0 ;; esac
	log "daemon at $sock answers but is not rootless: $so"
	return 2
}

rc=0; healthy || rc=$?
if [ $rc = 0 ]; then
	log "already running at $sock"
	finish
fi
[ $rc = 2 ] && die "refusing to reuse $sock"

# --- start ---------------------------------------------------------------------
# A daemon of ours that no longer answers (wedged, or half-dead after a crash):
# stop it so the new one can take the pid file and socket.
pidfile=$run_dir/docker.pid
if [ -f "$pidfile" ]; then
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = dockerd ]; then
		log "dockerd $pid does not answer; stopping it"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
fi
rm -f "$sock"

start_daemon() { # $1 = storage driver; echoes the pid of the launcher
	install -d -m 0700 -o "$uid" -g "$gid" "$home/.local" "$home/.local/share" "$data_root"
	echo "=== $(date -Is) starting with --storage-driver $1" >>"$daemon_log"
	chown "$uid:$gid" "$daemon_log"
	# setsid: the daemon must outlive this script and the shell that ran it.
	setsid runuser -u "$user" -- env -i \
		HOME="$home" USER="$user" LOGNAME="$user" XDG_RUNTIME_DIR="$run_dir" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		"$rootless_sh" --data-root "$data_root" --storage-driver "$1" \
		</dev/null >>"$daemon_log" 2>&1 &
	echo $!
}

for driver in $drivers; do
	log "starting rootless dockerd as $user (uid $uid), storage driver $driver"
	pid=$(start_daemon "$driver")
	deadline=$((SECONDS + wait_s))
	while [ $SECONDS -lt $deadline ]; do
		if healthy; then
			log "up: $(docker -H "$host_url" info --format 'driver={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}} security={{json .SecurityOptions}}')"
			finish
		fi
		kill -0 "$pid" 2>/dev/null || break # exited: this driver (or setup) failed
		sleep 1
	done
	log "storage driver $driver did not come up; daemon log tail:"
	tail -n 25 "$daemon_log" >&2
	kill -- -"$pid" 2>/dev/null || true # its own session/process group
	sleep 1
	rm -f "$pidfile" "$sock"
done
die "rootless dockerd did not start with any of: $drivers (log: $daemon_log)"
