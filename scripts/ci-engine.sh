#!/usr/bin/env bash
# A private Docker engine for one CI run: its own data root, exec root, socket and bridge, so the
# run starts from the state of a brand-new machine (no images, no build cache, nothing labkit made)
# without touching the machine's own engine or anybody's data on it. Root only (it starts dockerd).
#
#   scripts/ci-engine.sh start DIR   start it (idempotent); prints `export DOCKER_HOST=unix://DIR/docker.sock`
#   scripts/ci-engine.sh stop DIR    stop it and delete DIR (its images, containers and cache go with it)
#
# Its bridge is `lkci-<hash of DIR>` on a 10.213.N.0/24 subnet (the machine's own engine does not use it) and it
# does not manage iptables (--iptables=false): published ports still work on 127.0.0.1 through
# docker-proxy; one FORWARD rule lets containers of its bridge reach each other (removed at stop);
# no NAT, so nothing leaves the machine.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
# bridge and subnet derive from DIR, so two private engines (two CI runs, a developer's and CI's) never share one
key=$(printf '%s' "$(realpath -m "$dir")" | sha1sum | cut -c1-8)
BRIDGE=${LABKIT_CI_BRIDGE:-lkci-$key}
SUBNET=${LABKIT_CI_SUBNET:-10.213.$(( 0x${key:0:4} % 200 + 20 )).1/24}
sock="$dir/docker.sock"

say() { printf 'ci-engine: %s\n' "$*" >&2; }

answers() { [ -S "$sock" ] && [ "$(timeout 5 curl -s --unix-socket "$sock" http://localhost/_ping 2>/dev/null)" = OK ]; }

stop() {
    if [ -f "$dir/dockerd.pid" ]; then
        pid=$(cat "$dir/dockerd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # a managed containerd and its shims outlive a killed dockerd: end whatever runs from this exec root
    pkill -9 -f -- "$dir/exec" 2>/dev/null || true
    while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
    if [ -d "$dir" ]; then
        # overlay mounts of containers that were still running when dockerd went
        { grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf "$dir"
    fi
    say "stopped and deleted $dir"
}

start() {
    [ "$(id -u)" = 0 ] || { say "a private engine needs root (it starts dockerd)"; exit 1; }
    command -v dockerd >/dev/null || { say "dockerd is not installed: run scripts/setup-host.sh first"; exit 1; }
    mkdir -p "$dir/data" "$dir/exec"
    chmod 711 "$dir"  # mktemp made it 700: the socket's group alone decides who may use the engine
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$SUBNET" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    # Bridged traffic passes the host's FORWARD chain (br_netfilter), whose policy the machine's own
    # engine sets to DROP: let containers of this bridge talk to each other, as Docker's ICC does.
    if command -v iptables >/dev/null && ! iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; then
        iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
    fi
    if answers; then say "already answering on $sock"; echo "export DOCKER_HOST=unix://$sock"; return; fi
    start=$(date +%s.%N)
    setsid nohup dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
        -H "unix://$sock" --group docker --bridge "$BRIDGE" --iptables=false --ip-masq=false \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        if answers; then
            say "answering on $sock after $(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo '?') s"
            echo "export DOCKER_HOST=unix://$sock"
            return
        fi
        sleep 0.25
    done
    say "dockerd did not answer within 30 s; last lines of $dir/dockerd.log:"
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
