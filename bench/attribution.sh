#!/usr/bin/env bash
# Process-attribution benchmark of `exfilwatch run` on live traffic (run by
# `make bench-attribution`). See bench/attribution/README.md.
#
# N short-lived client processes (lifetimes 5 ms, 20 ms, 50 ms, 200 ms, 1 s)
# each make one HTTP upload through a veth pair between two network
# namespaces it creates; the report says which share of them exfilwatch
# attributed to the right pid, the lookup delays, what `ss -tnp` sampling
# (and nethogs, when installed) saw alongside, and the sensor's idle CPU.
#
# Environment:
#   BENCH_N=1000              client processes (split evenly over the lifetimes)
#   BENCH_CONCURRENCY=12      clients alive at once
#   BENCH_SEED=1              shuffle seed
#   BENCH_IDLE=20s            idle CPU measurement window
#   BENCH_SS_INTERVAL=5ms     pause between two ss samples
#   BENCH_NETHOGS=auto        1: install and run nethogs as a second peer; 0: don't;
#                             auto: run it when installed
#   BENCH_RECORD=0            1: also --record the sensor's run (pcapng + journal)
#   EXFILWATCH=./exfilwatch   the binary to measure (built by `make build`)
#
# Needs root. Exit status: 0 when the targets are met, 1 when one is missed,
# 2 on errors. The report goes to stdout and bench/.cache/attribution.txt.
set -euo pipefail

log() { printf 'bench-attribution: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
CACHE="$BENCH_DIR/.cache"
BIN="$CACHE/bin"
WORK="$CACHE/attribution"

EXFILWATCH="${EXFILWATCH:-$ROOT/exfilwatch}"
if [[ "$EXFILWATCH" != */* ]]; then
    EXFILWATCH="$(command -v "$EXFILWATCH" || echo "$EXFILWATCH")"
elif [[ "$EXFILWATCH" != /* ]]; then
    EXFILWATCH="$PWD/$EXFILWATCH"
fi
export EXFILWATCH
[[ -x "$EXFILWATCH" ]] || die "$EXFILWATCH not found or not executable (make build)"
[[ "$(id -u)" == 0 ]] || die "needs root (network namespaces, AF_PACKET)"
command -v go >/dev/null || die "go is not in PATH"
for v in BENCH_N BENCH_CONCURRENCY BENCH_SEED; do
    [[ -z "${!v:-}" || "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, not '${!v}'"
done
mkdir -p "$BIN" "$WORK"

# --- Debian packages, installed only when missing -------------------------------
need=(iproute2 python3 iputils-ping)
[[ "${BENCH_NETHOGS:-auto}" == 1 ]] && need+=(nethogs)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# python3 may come from elsewhere (pyenv): the command is what counts.
if [[ " ${missing[*]} " == *" python3 "* ]] && command -v python3 >/dev/null; then
    missing=("${missing[@]/python3/}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if (( ${#missing[@]} )); then
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y --no-install-recommends "${missing[@]}" ||
      { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }; } >"$CACHE/apt-attribution.log" 2>&1 ||
        die "apt-get install ${missing[*]} failed (see ${CACHE#"$ROOT"/}/apt-attribution.log)"
fi

# --- the driver and the client ------------------------------------------------
log "building the benchmark driver and client into ${BIN#"$ROOT"/}"
(cd "$BENCH_DIR" && go build -buildvcs=false -o "$BIN/attribution-bench" ./attribution &&
    CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags='-s -w' -o "$BIN/attr-client" ./attribution/client)

# --- run, with the namespaces and their processes removed whatever happens ----
TAG=$(( $$ % 100000 ))
HOST_NS="exfw-ba-host-$TAG" REM_NS="exfw-ba-rem-$TAG"
HOST_IF="exfwbah$TAG" REM_IF="exfwbar$TAG"
DRIVER=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$DRIVER" ]] && kill -0 "$DRIVER" 2>/dev/null; then
        kill -TERM "$DRIVER" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DRIVER" 2>/dev/null || true
    fi
    for ns in "$HOST_NS" "$REM_NS"; do
        if [[ -e "/run/netns/$ns" ]]; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    # Our veth, only if it never left the root namespace.
    if ip -d link show "$HOST_IF" 2>/dev/null | grep -q 'veth'; then ip link del "$HOST_IF" 2>/dev/null || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
rc=0
"$BIN/attribution-bench" \
    -client "$BIN/attr-client" -exfilwatch "$EXFILWATCH" -server "$ROOT/captures/lab/upload_server.py" \
    -out "$CACHE/attribution.txt" -work "$WORK" \
    -host-ns "$HOST_NS" -remote-ns "$REM_NS" -host-if "$HOST_IF" -remote-if "$REM_IF" &
DRIVER=$!
wait "$DRIVER" || rc=$?
DRIVER=""
exit "$rc"
