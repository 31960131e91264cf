#!/usr/bin/env bash
# Start (or verify) rootless Podman's Docker-compatible API service, owned by
# the same unprivileged user as the rootless dockerd (scripts/rootless-docker.sh),
# so `engine = "podman"` and the conformance tests can run against it.
#
# Usage (as root):  eval "$(scripts/podman-service.sh)"
# Progress goes to stderr. The last stdout line is always
#     export PODMAN_HOST=unix:///run/user/<uid>/podman/podman.sock
# Idempotent: if the service already answers it is only verified.
#
# Environment knobs: ROOTLESS_USER [runner-ci] (created by rootless-docker.sh
# if missing, with its subordinate ids), PODMAN_WAIT [30] seconds.
set -euo pipefail

user=${ROOTLESS_USER:-runner-ci}
wait_s=${PODMAN_WAIT:-30}
log() { echo "podman-service: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (I start the user's service)"

missing=()
for pair in podman:podman crun:crun conmon:conmon newuidmap:uidmap \
            slirp4netns:slirp4netns fuse-overlayfs:fuse-overlayfs catatonit:catatonit curl:curl; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/libexec/podman/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# The user and its /etc/subuid range come from rootless-docker.sh.
id -u "$user" >/dev/null 2>&1 || die "user $user does not exist: run scripts/rootless-docker.sh first"
grep -q "^$user:" /etc/subuid || die "$user has no /etc/subuid range: run scripts/rootless-docker.sh first"
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
run_dir=/run/user/$uid
sock=$run_dir/podman/podman.sock
host_url=unix://$sock
svc_log=$home/podman-service.log
install -d -m 0700 -o "$uid" -g "$gid" "$run_dir" "$run_dir/podman"

# No systemd or journald here: cgroupfs and a file event log, or podman
# fails every create trying to reach them. runc, not Debian's crun 1.8: on
# this kernel's hybrid cgroup layout crun refuses to start any container
# ("cgroups in hybrid mode not supported").
conf_dir=$home/.config/containers
install -d -m 0755 -o "$uid" -g "$gid" "$home/.config" "$conf_dir"
if ! grep -q '^runtime = "runc"' "$conf_dir/containers.conf" 2>/dev/null; then
	cat >"$conf_dir/containers.conf" <<'EOF'
# Written by runner's scripts/podman-service.sh: no systemd on this machine.
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
	chown "$uid:$gid" "$conf_dir/containers.conf"
	restart=1
fi
pid_file=$run_dir/podman/service.pid

as_user() {
	runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
		XDG_RUNTIME_DIR="$run_dir" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

finish() {
	echo "export PODMAN_HOST=$host_url"
	exit 0
}

healthy() {
	timeout 10 curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1
}

if [ -n "${restart:-}" ] && healthy && [ -s "$pid_file" ]; then
	# A service this script started before the configuration changed
	# keeps the old configuration: stop it (by its recorded pid only).
	log "configuration changed: stopping the service (pid $(cat "$pid_file"))"
	kill "$(cat "$pid_file")" 2>/dev/null || true
	for _ in $(seq 10); do healthy || break; sleep 1; done
fi
if healthy; then
	log "already running at $sock"
	finish
fi
rm -f "$sock"
as_user podman system migrate >&2 2>&1 || true
log "starting podman system service as $user (uid $uid) at $sock (log: $svc_log)"
touch "$svc_log" && chown "$uid:$gid" "$svc_log"
# setsid: it must outlive this script. --time=0: never exit when idle.
setsid runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
	XDG_RUNTIME_DIR="$run_dir" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	podman system service --time=0 "$host_url" </dev/null >>"$svc_log" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"
for _ in $(seq "$wait_s"); do
	if healthy; then
		log "up (pid $pid): $(as_user podman version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
		finish
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 1
done
log "the service did not answer; log tail:"
tail -n 25 "$svc_log" >&2
die "podman system service did not start"
