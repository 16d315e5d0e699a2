#!/usr/bin/env bash
# Host set-up for Cloud-native labs, used by `make lab`, `make test` and CI.
# 1. A Docker engine must answer. If none does: on Debian/Ubuntu as root, install Debian's
#    docker.io (only when no engine is installed at all) and start dockerd in the background;
#    anywhere else, print exact instructions and stop. Never installs over an existing engine.
# 2. The host tools the labs use (installed on Debian/Ubuntu as root when missing), and for
#    notebook 06 a dedicated unprivileged user that runs the rootless engine (subuid/subgid ranges),
#    and for notebook 08 QEMU user emulation of arm64 registered with binfmt_misc.
# Idempotent: when everything is there it only checks, in well under 2 s.
set -euo pipefail

HOST_PACKAGES=(busybox-static debootstrap docker-registry curl uidmap rootlesskit slirp4netns buildah qemu-user-static chromium)
ROOTLESS_USER=labkit-rootless
DOCKERD_LOG=${LABKIT_DOCKERD_LOG:-/var/log/labkit-dockerd.log}
SOCKET=/var/run/docker.sock

say() { printf 'setup-host: %s\n' "$*"; }

engine_answers() {
    if [ -n "${DOCKER_HOST:-}" ] || [ -n "${DOCKER_CONTEXT:-}" ]; then
        command -v docker >/dev/null && timeout 5 docker version >/dev/null 2>&1
    elif command -v curl >/dev/null; then
        [ -S "$SOCKET" ] && [ "$(timeout 5 curl -s --unix-socket "$SOCKET" http://localhost/_ping 2>/dev/null)" = OK ]
    else
        command -v docker >/dev/null && timeout 5 docker version >/dev/null 2>&1
    fi
}

debian_root() {
    [ "$(id -u)" = 0 ] && [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
    done
}

apt_install() {
    say "installing: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@"; }
}

instructions() {
    cat >&2 <<'MSG'
setup-host: no Docker engine answers, and this script only installs one on Debian/Ubuntu as root.
  - Linux (Debian/Ubuntu):  sudo scripts/setup-host.sh   (installs docker.io, starts dockerd)
  - Linux (other):          install Docker Engine from your distribution, start it
                            (e.g. `sudo systemctl start docker`), add yourself to the docker group.
  - macOS / Windows:        install and start Docker Desktop (or Colima / Rancher Desktop).
  - Remote engine:          export DOCKER_HOST=ssh://user@host (or select a docker context).
Then run this command again; `labkit doctor` shows what is still missing.
MSG
    exit 1
}

start_dockerd() {
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        engine_answers && { say "dockerd answers on $SOCKET"; return 0; }
        sleep 0.5
    done
    say "dockerd did not answer within 30 s; last lines of $DOCKERD_LOG:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2
    exit 1
}

if engine_answers; then
    say "a Docker engine answers"
elif debian_root; then
    if ! command -v dockerd >/dev/null; then
        if command -v docker >/dev/null && [ -n "$(missing_packages docker.io)" ] && dpkg-query -W docker-ce >/dev/null 2>&1; then
            say "docker-ce is installed but not running: start it (e.g. systemctl start docker)" >&2; exit 1
        fi
        apt_install docker.io
    fi
    start_dockerd
else
    instructions
fi

if command -v dpkg-query >/dev/null; then
    missing=$(missing_packages "${HOST_PACKAGES[@]}")
    if [ -n "$missing" ]; then
        if debian_root; then
            # shellcheck disable=SC2086
            apt_install $missing
        else
            say "optional host tools missing: $missing (sudo apt-get install $missing)" >&2
        fi
    fi
fi

# The rootless engine's user: a system user with no login shell and its own subordinate id range.
if [ "$(id -u)" = 0 ] && command -v useradd >/dev/null; then
    if ! id "$ROOTLESS_USER" >/dev/null 2>&1; then
        say "creating user $ROOTLESS_USER for the rootless engine (notebook 06)"
        useradd --system --create-home --home-dir "/var/lib/$ROOTLESS_USER" --shell /usr/sbin/nologin "$ROOTLESS_USER"
    fi
    for f in /etc/subuid /etc/subgid; do
        grep -q "^$ROOTLESS_USER:" "$f" 2>/dev/null || { echo "$ROOTLESS_USER:1000000:65536" >>"$f"; say "added a range for $ROOTLESS_USER to $f"; }
    done
    # slirp4netns opens /dev/net/tun as that user; common distributions ship it world read-writable
    if [ -c /dev/net/tun ] && ! runuser -u "$ROOTLESS_USER" -- test -w /dev/net/tun 2>/dev/null; then
        chmod 666 /dev/net/tun && say "made /dev/net/tun usable by unprivileged users (as most distributions ship it)"
    fi
fi

# arm64 emulation for notebook 08: the kernel runs foreign binaries through QEMU once the
# interpreter is registered with binfmt_misc (Docker Desktop does the same in its VM).
BINFMT=/proc/sys/fs/binfmt_misc
if [ "$(id -u)" = 0 ] && [ -r /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
    [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
    if [ -w "$BINFMT/register" ] && [ ! -e "$BINFMT/qemu-aarch64" ]; then
        grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | grep . > "$BINFMT/register" \
            && say "registered QEMU arm64 emulation with binfmt_misc"
    fi
fi
