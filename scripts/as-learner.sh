#!/usr/bin/env bash
# Run the workshop as a learner who is not root, the way a laptop user meets it: a normal user in
# the engine socket's group (usually `docker`), with its own /etc/subuid and /etc/subgid range (the
# rootless engine of notebooks 06 and 09 runs as that user), its own copy of the repository and a
# venv made with the distribution's Python. Run as root (CI does): it creates or updates the user,
# then, as that user, runs `labkit doctor` and `labkit verify` of every notebook, or of the ones
# named as arguments (`scripts/as-learner.sh 00-welcome 04`).
#
# The host set-up (engine, host tools, /dev/net/tun) is the administrator's job, done once by
# `sudo scripts/setup-host.sh`; this script does not do it. The engine is the one DOCKER_HOST names
# when set (e.g. a private engine whose socket belongs to group docker), else /var/run/docker.sock.
#
# --rootless (first argument, or LABKIT_LEARNER_ROOTLESS=1): the learner's OWN rootless engine instead, as
# in a classroom (issue 18): root exports a bundle of the lab images from the engine DOCKER_HOST names
# (`labkit bundle export`) into a directory the learner can read; as the learner (without the socket's
# group: the root engine is out of reach), `labkit engine start`, `labkit bundle import` into it, then
# doctor and verify with DOCKER_HOST on that engine; the engine is stopped with --purge whatever
# happened. Report in build/as-learner-rootless/ (`scripts/as-learner.sh --rootless 03 08`).
#
# Environment: LABKIT_LEARNER (user, default labkit-learner), LABKIT_LEARNER_PYTHON (default
# /usr/bin/python3). Exit status: 0 when doctor is ready and no notebook failed (skipped is not a
# failure), 1 otherwise, 2 on a usage or set-up error. Idempotent: a second run reuses the user and
# the venv (re-installed only when pyproject.toml, requirements.lock or the Python changed).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOTLESS=${LABKIT_LEARNER_ROOTLESS:-0}
if [ "${1:-}" = --rootless ]; then ROOTLESS=1; shift; fi
LEARNER=${LABKIT_LEARNER:-labkit-learner}
PYTHON=${LABKIT_LEARNER_PYTHON:-/usr/bin/python3}
SUBID_COUNT=65536

say() { printf 'as-learner: %s\n' "$*"; }
die() { printf 'as-learner: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "run me as root (sudo $0): I create the learner user; the notebooks then run as that user"
[ -x "$PYTHON" ] || die "no $PYTHON: install the distribution's Python (sudo apt-get install python3 python3-venv)"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "$PYTHON cannot make a venv: sudo apt-get install python3-venv"

# One run at a time: two runs would copy into the same directory.
# (the 2>/dev/null inside braces: on `exec` itself it would silence this script's stderr for good)
{ exec 9>"/run/lock/labkit-as-learner.lock"; } 2>/dev/null || exec 9>"/tmp/labkit-as-learner.lock"
flock 9

# --- the engine's socket and its group --------------------------------------------------------
HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
GROUP=""
if [ "${HOST#unix://}" != "$HOST" ]; then
    SOCKET=${HOST#unix://}
    [ -S "$SOCKET" ] || die "no engine socket at $SOCKET: start the engine first (sudo scripts/setup-host.sh)"
    GROUP=$(stat -c %G "$SOCKET")
    [ "$(stat -c %g "$SOCKET")" != 0 ] || die "$SOCKET belongs to group root: a learner cannot be given access \
without making it root; start the engine with a socket group (dockerd --group docker; docker is dockerd's default when that group exists)"
fi

# --- the user ---------------------------------------------------------------------------------
if ! id "$LEARNER" >/dev/null 2>&1; then
    say "creating user $LEARNER"
    useradd --create-home --user-group --shell /bin/bash "$LEARNER"
fi
if [ -n "$GROUP" ] && ! id -nG "$LEARNER" | tr ' ' '\n' | grep -qx "$GROUP"; then
    usermod -aG "$GROUP" "$LEARNER" && say "added $LEARNER to group $GROUP (the group of $SOCKET)"
fi
HOME_DIR=$(getent passwd "$LEARNER" | cut -d: -f6)
[ -d "$HOME_DIR" ] || install -d -m 0750 -o "$LEARNER" -g "$LEARNER" "$HOME_DIR"
# everything in a home is its user's (a root-owned ~/.local, left by a tool run as root with this
# HOME, stops buildah and pip as the learner, as no learner's laptop would)
find "$HOME_DIR" -xdev ! -user "$LEARNER" -exec chown -h "$LEARNER:$LEARNER" {} + 2>/dev/null || true

# The socket's group decides who may use the engine only if the learner can reach the socket: a
# private engine's directory made by `mktemp -d` (mode 700, root's) stops everybody else on the way.
# Root's directories on that path are opened for traversal only (o+x: nothing becomes listable).
if [ -n "$GROUP" ] && ! runuser -u "$LEARNER" -- test -e "$SOCKET" 2>/dev/null; then
    d=$(dirname "$SOCKET")
    while [ "$d" != / ]; do
        if [ "$(stat -c %u "$d")" = 0 ] && ! runuser -u "$LEARNER" -- test -x "$d"; then
            chmod o+x "$d" && say "opened $d for traversal (o+x) so that $LEARNER reaches $SOCKET"
        fi
        d=$(dirname "$d")
    done
fi

# Subordinate ids for the rootless engine: one range of its own, after every range already given
# out (useradd may have allocated one already; either way it must overlap nobody else's).
subid_range() {  # prints "start count" of $LEARNER in file $1, if any
    awk -F: -v u="$LEARNER" '$1 == u { print $2, $3; exit }' "$1" 2>/dev/null || true
}
overlaps() {  # does $LEARNER's range in file $1 overlap another user's?
    awk -F: -v u="$LEARNER" '
        { s[NR] = $2; e[NR] = $2 + $3; n[NR] = $1 }
        $1 == u { ms = $2; me = $2 + $3 }
        END { for (i in s) if (n[i] != u && s[i] < me && ms < e[i]) { print n[i]; exit } }' "$1"
}
touch /etc/subuid /etc/subgid
if [ -z "$(subid_range /etc/subuid)" ] || [ -z "$(subid_range /etc/subgid)" ]; then
    start=$(cat /etc/subuid /etc/subgid | awk -F: -v c=$SUBID_COUNT '
        { end = $2 + $3; if (end > max) max = end }
        END { if (max < 100000) max = 100000; print int((max + c - 1) / c) * c }')
    for f in subuid subgid; do
        [ -n "$(subid_range /etc/$f)" ] || usermod "--add-${f}s" "$start-$((start + SUBID_COUNT - 1))" "$LEARNER"
    done
    say "gave $LEARNER the subordinate ids $start-$((start + SUBID_COUNT - 1))"
fi
for f in /etc/subuid /etc/subgid; do
    other=$(overlaps "$f")
    [ -z "$other" ] || die "$LEARNER's range in $f overlaps $other's: edit $f so that ranges do not overlap"
done

# --- the learner's copy of the repository -----------------------------------------------------
DEST=$HOME_DIR/cloud-native-labs
runuser -u "$LEARNER" -- mkdir -p "$DEST"
find "$DEST" -mindepth 1 -maxdepth 1 ! -name .venv ! -name build -exec rm -rf {} +
tar -C "$REPO" -c --exclude=./.venv --exclude=./build --exclude=./.git --exclude=.pytest_cache \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.ipynb_checkpoints . \
    | runuser -u "$LEARNER" -- tar -C "$DEST" -x --no-same-owner
say "copied $REPO to $DEST (without .venv, build and .git)"

# --- the venv, with the distribution's Python -------------------------------------------------
VENV=$DEST/.venv
# The learner gets a clean environment: only what says which engine to use and how this machine
# reaches the package index (proxies, CA certificates, pip/uv settings), as a user's shell would have.
KEEP=()
for name in $(compgen -e); do
    case $name in
        DOCKER_HOST|LABKIT_OFFLINE|CI|TZ|TQDM_DISABLE|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PIP_*|UV_*|\
        http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|ALL_PROXY|all_proxy)
            KEEP+=("$name=${!name}") ;;
    esac
done
# Rootless: the learner keeps only their own group, so nothing can fall back on the root engine's socket.
GROUPS_OPT=()
[ "$ROOTLESS" = 1 ] && GROUPS_OPT=(-g "$LEARNER")
as_learner() {
    runuser -u "$LEARNER" "${GROUPS_OPT[@]}" -- env -i HOME="$HOME_DIR" USER="$LEARNER" LOGNAME="$LEARNER" SHELL=/bin/bash \
        LANG=C.UTF-8 PATH="$VENV/bin:$HOME_DIR/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "${KEEP[@]}" "$@"
}
t0=$(now)
python_id=$("$PYTHON" -c 'import sys; print(sys.executable, sys.version)')
if [ "$(cat "$VENV/.labkit-learner-python" 2>/dev/null)" != "$python_id" ]; then
    rm -rf "$VENV"  # another Python (or none yet): a venv cannot switch interpreters
fi
if [ -f "$DEST/requirements.lock" ] && grep -q '^PYTHON ?=' "$DEST/Makefile"; then
    # what a learner types: the host check, then the locked environment (--require-hashes)
    # (rootless: the engine starts only after the venv, so the install skips setup's host check)
    target=setup; [ "$ROOTLESS" = 1 ] && target=.venv/.installed
    say "as $LEARNER: make $target PYTHON=$PYTHON (installs requirements.lock with its hashes)"
    as_learner make -C "$DEST" --no-print-directory "$target" PYTHON="$PYTHON"
else
    stamp=$(sha256sum "$DEST/pyproject.toml" | cut -c1-16)
    if [ "$(cat "$VENV/.labkit-learner-installed" 2>/dev/null)" != "$stamp" ]; then
        say "as $LEARNER: pip install -e '.[lab,test]' (no requirements.lock in this checkout)"
        [ -x "$VENV/bin/python" ] || as_learner "$PYTHON" -m venv "$VENV"
        as_learner sh -c "cd '$DEST' && pip install -q -e '.[lab,test]'"
        echo "$stamp" | runuser -u "$LEARNER" -- tee "$VENV/.labkit-learner-installed" >/dev/null
    fi
fi
echo "$python_id" | runuser -u "$LEARNER" -- tee "$VENV/.labkit-learner-python" >/dev/null
say "venv ready with $("$VENV/bin/python" -V) in $(since "$t0") s"

# --- rootless: the learner's own engine, loaded from a bundle ---------------------------------
REPORT=$REPO/build/as-learner
if [ "$ROOTLESS" = 1 ]; then
    REPORT=$REPO/build/as-learner-rootless
    BUNDLE=$(mktemp -d /tmp/labkit-learner-bundle.XXXXXX)
    stop_engine() {
        "$REPO/.venv/bin/labkit" engine stop --user "$LEARNER" --purge || true
        rm -rf "$BUNDLE"
    }
    trap stop_engine EXIT
    t0=$(now)
    "$REPO/.venv/bin/labkit" bundle export "$BUNDLE" >/dev/null
    chmod -R a+rX "$BUNDLE"
    say "bundle of the lab images exported from ${DOCKER_HOST:-unix:///var/run/docker.sock} in $(since "$t0") s ($(du -sh "$BUNDLE" | cut -f1))"
    t0=$(now)
    eval "$(as_learner labkit engine start)"  # sets DOCKER_HOST to the learner's socket
    KEEP+=("DOCKER_HOST=$DOCKER_HOST")
    say "$LEARNER's rootless engine answers at $DOCKER_HOST after $(since "$t0") s"
    t0=$(now)
    as_learner labkit bundle import "$BUNDLE" --docker-host "$DOCKER_HOST" | tail -n 3
    say "bundle imported into $LEARNER's engine in $(since "$t0") s"
fi

# --- as the learner: doctor, then verify ------------------------------------------------------
say "running as $(as_learner id) against ${DOCKER_HOST:-unix:///var/run/docker.sock}"
if ! as_learner sh -c "cd '$DEST' && labkit doctor"; then
    say "labkit doctor says this user's set-up is not ready (see the fixes above): not running the notebooks" >&2
    exit 1
fi
t1=$(now)
rc=0
as_learner sh -c "cd '$DEST' && labkit verify --out '$DEST/build/verify' \"\$@\"" verify "$@" || rc=$?
say "verify took $(since "$t1") s"
mkdir -p "$REPORT"
cp -r "$DEST/build/verify/." "$REPORT/" 2>/dev/null || true
say "verify report: $DEST/build/verify/report.html (copied to $REPORT/report.html)"
exit $rc
