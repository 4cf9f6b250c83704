#!/usr/bin/env bash
# Performance benchmark of `exfilwatch replay` against a decode-only floor and
# tshark, on the same synthetic captures, in the same run. See bench/README.md.
#
# Environment:
#   BENCH_SIZE=1200000000   target size in bytes of the mixed capture
#   BENCH_CONNS=200000      connections in the short-connection capture
#   BENCH_SEED=1            generator seed
#   BENCH_FILES="mixed short"  which captures to measure
#   BENCH_TSHARK=1          0: do not install or run tshark
#   BENCH_REPEAT=3          runs of the floor and exfilwatch per file (the fastest
#                           is reported; tshark runs once)
#   BENCH_TIMEOUT=30m       kill a measured command after this long
#   EXFILWATCH=./exfilwatch the binary to measure (built by the Makefile)
#
# Exit status: 0 when exfilwatch meets the targets or was not measured, 1 when
# it misses one (or fails), other values on errors.
set -euo pipefail

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
CACHE="$BENCH_DIR/.cache"
BIN="$CACHE/bin"

BENCH_SIZE="${BENCH_SIZE:-1200000000}"
BENCH_CONNS="${BENCH_CONNS:-200000}"
BENCH_SEED="${BENCH_SEED:-1}"
BENCH_FILES="${BENCH_FILES:-mixed short}"
BENCH_TSHARK="${BENCH_TSHARK:-1}"
BENCH_REPEAT="${BENCH_REPEAT:-3}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-30m}"
for v in BENCH_SIZE BENCH_CONNS BENCH_SEED BENCH_REPEAT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, not '${!v}'"
done
(( BENCH_REPEAT >= 1 )) || die "BENCH_REPEAT must be at least 1"

# The binary under test: a path (relative to where run.sh was started) or a
# command name looked up in PATH.
EXFILWATCH="${EXFILWATCH:-$ROOT/exfilwatch}"
if [[ "$EXFILWATCH" != */* ]]; then
    EXFILWATCH="$(command -v "$EXFILWATCH" || echo "$EXFILWATCH")"
elif [[ "$EXFILWATCH" != /* ]]; then
    EXFILWATCH="$PWD/$EXFILWATCH"
fi

mkdir -p "$BIN"

# --- tools -------------------------------------------------------------------
command -v go >/dev/null || die "go is not in PATH"
log "building gencap, floor, runner, report into ${BIN#"$ROOT"/}"
# gencap and floor are modules of their own (they import gopacket/pcapgo, which
# needs golang.org/x/net, absent from the root go.sum); runner and report are
# plain packages of the root module.
for tool in gencap floor; do
    (cd "$BENCH_DIR/$tool" && go build -buildvcs=false -o "$BIN/$tool" .)
done
(cd "$ROOT" && go build -buildvcs=false -o "$BIN/" ./bench/runner ./bench/report)

TSHARK_SKIP=""
if [[ "$BENCH_TSHARK" == 0 ]]; then
    TSHARK_SKIP="disabled with BENCH_TSHARK=0"
elif ! command -v tshark >/dev/null; then
    log "tshark is missing: installing it with apt-get"
    SUDO=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null; then SUDO=(sudo); fi
    fi
    if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
           "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark; } >"$CACHE/apt.log" 2>&1; then
        log "could not install tshark (see ${CACHE#"$ROOT"/}/apt.log): its rows are skipped"
    fi
    command -v tshark >/dev/null || TSHARK_SKIP="tshark not installed (apt-get install tshark failed)"
fi

# --- captures (generated once, cached) ---------------------------------------
# The cache key covers the generator's sources and its parameters, so editing
# gencap or changing BENCH_SIZE/BENCH_CONNS/BENCH_SEED regenerates the file.
gen_key() {
    {
        find "$BENCH_DIR/gencap" -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 cat
        cat "$BENCH_DIR/gencap/go.mod" "$BENCH_DIR/gencap/go.sum"
        printf '%s\n' "$@"
    } | sha256sum | cut -d' ' -f1
}

ensure_capture() { # name kind gencap-args...
    local name="$1" kind="$2"
    shift 2
    local file="$CACHE/$name.pcap"
    local key
    key="$(gen_key "$kind" "$@" "-seed=$BENCH_SEED")"
    if [[ -f "$file" && -f "$file.key" && "$(cat "$file.key")" == "$key" ]]; then
        log "reusing ${file#"$ROOT"/} ($(stat -c %s "$file") bytes)"
        return
    fi
    rm -f "$file" "$file.key" "$file.summary.json"
    local need=$(( BENCH_CONNS * 2500 / 1024 ))
    [[ "$kind" == mixed ]] && need=$(( BENCH_SIZE / 1000 * 11 / 10 ))
    local avail
    avail="$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')"
    (( avail > need )) || die "not enough disk space in $CACHE for $name.pcap: ${avail} KiB free, ~${need} KiB needed"
    log "generating ${file#"$ROOT"/} ($kind $*)"
    "$BIN/gencap" -out "$file" -kind "$kind" "$@" -seed "$BENCH_SEED" -summary "$file.summary.json"
    echo "$key" >"$file.key"
}

FILES=()
for f in $BENCH_FILES; do
    case "$f" in
    mixed) ensure_capture mixed mixed -size "$BENCH_SIZE" ;;
    short) ensure_capture short short -conns "$BENCH_CONNS" ;;
    *) die "unknown capture '$f' in BENCH_FILES (want mixed and/or short)" ;;
    esac
    FILES+=("$CACHE/$f.pcap")
done

# --- measurements --------------------------------------------------------------
RESULTS="$CACHE/results.jsonl"
: >"$RESULTS"

json_str() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }
skip() { # tool file reason
    printf '{"type":"skip","name":%s,"file":%s,"file_bytes":%s,"reason":%s}\n' \
        "$(json_str "$1")" "$(json_str "$2")" "$(stat -c %s "$2")" "$(json_str "$3")" >>"$RESULTS"
    log "skipping $1 on $(basename "$2"): $3"
}
measure() { # tool file stdout-file command...: one measured run, appended to $RESULTS
    local tool="$1" file="$2" out="$3"
    shift 3
    "$BIN/runner" -name "$tool" -file "$file" -result "$RESULTS" -timeout "$BENCH_TIMEOUT" \
        -stdout "$out" -stderr "$CACHE/$tool-$(basename "$file" .pcap).err" -- "$@"
}

EXFILWATCH_SKIP=""
if [[ ! -x "$EXFILWATCH" ]]; then
    EXFILWATCH_SKIP="binary $EXFILWATCH not found: build it (make build) or set EXFILWATCH=/path/to/exfilwatch"
    log "$EXFILWATCH_SKIP"
fi

for file in "${FILES[@]}"; do
    name="$(basename "$file" .pcap)"
    log "warming the page cache with $name.pcap"
    cat "$file" >/dev/null
    for ((i = 1; i <= BENCH_REPEAT; i++)); do
        # The floor first: its packet count is the one used for every row.
        measure floor "$file" "$CACHE/floor-$name.out" "$BIN/floor" -json "$file"
        if [[ $i == 1 ]]; then
            cat "$CACHE/floor-$name.out" >>"$RESULTS"
        fi

        if [[ -n "$EXFILWATCH_SKIP" ]]; then
            if [[ $i == 1 ]]; then skip exfilwatch "$file" "$EXFILWATCH_SKIP"; fi
        else
            measure exfilwatch "$file" "$CACHE/exfilwatch-$name.out" "$EXFILWATCH" replay --events /dev/null "$file"
        fi

        if [[ $i != 1 ]]; then
            continue # tshark is slow and far behind: one run is enough
        elif [[ -n "$TSHARK_SKIP" ]]; then
            skip tshark "$file" "$TSHARK_SKIP"
        else
            log "tshark on $name.pcap (slow: 5-10 minutes on the full-size mixed file; BENCH_TSHARK=0 skips it)"
            measure tshark "$file" /dev/null tshark -r "$file" -Y 'http.request or ftp.request' -T fields \
                -e frame.number -e http.request.method -e http.request.uri \
                -e ftp.request.command -e ftp.request.arg
        fi
    done
done

# --- report --------------------------------------------------------------------
rc=0
"$BIN/report" -o "$CACHE/results.txt" "$RESULTS" || rc=$?
log "table written to ${CACHE#"$ROOT"/}/results.txt (raw measurements: ${RESULTS#"$ROOT"/})"
exit "$rc"
