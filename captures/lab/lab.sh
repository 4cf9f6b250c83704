# shellcheck shell=bash
# The two-namespace lab shared by captures/record.sh (protocol captures) and
# captures/record_scenarios.sh (detection scenarios); sourced, not run.
#
#   "host"   namespace $HNS  veth $VH  $H4/24 $H6/64   clients (stands for the Mac)
#   "remote" namespace $RNS  veth $VR  $R4/24 $R6/64   servers (upload_server.py, vsftpd)
#
# joined by one veth pair, no default route, offloads off (MSS-sized segments).
# The caller sets, before sourcing: LAB_TAG (log prefix) and LAB_SCRIPT (its
# path relative to the repo, named in the temporary policy-rc.d); and, before
# lab_netns_up: HNS RNS VH VR H4 R4 H6 R6 (names carry the caller's PID, so
# parallel runs do not collide). LAB_KEEP_WORK=1 keeps $WORK on exit.
#
# Cleanup is one EXIT/INT/TERM trap (lab_traps): every process started with
# lab_bg or added to PIDS is killed by PID, then whatever is left inside the
# two lab namespaces (only we run there), the namespaces are deleted, a
# policy-rc.d we created is removed and $WORK deleted; also on failure or
# Ctrl-C, so that a run leaves nothing behind and the next one starts clean.

LAB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FTP_USER=exfwuser FTP_PASS=exfwpass FTP_UID=64123
# SHA-512 crypt of "exfwpass" with the fixed salt "exfwlab" (lab-only password)
# shellcheck disable=SC2016
FTP_HASH='$6$exfwlab$OJCAnbNOSSPtU16mILrjsEEflr02niCXsX3bQtUFNAdilGe0OjAHgNkWMf9XRYBCysevt1p9k..eYchj5Cmwv/'

HNS="" RNS="" VH="" VR=""
WORK=""
PIDS=()             # background processes started by us (servers, captures, sensor, clients)
LAB_POLICY_RC=0     # 1 while /usr/sbin/policy-rc.d is ours
LAB_KEEP_WORK=${LAB_KEEP_WORK:-0}

log() { printf '[%s] %s\n' "$LAB_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LAB_TAG" "$*" >&2; exit 1; }

lab_require_root() {
    [ "$(id -u)" = 0 ] || { echo "$LAB_SCRIPT: must run as root (sudo $LAB_SCRIPT)" >&2; exit 1; }
}

# lab_install PACKAGE=FILE...: installs the Debian packages whose FILE (a
# program we use) is missing, then dies if any FILE is still not executable.
lab_install() {
    local spec pkg missing=()
    for spec in "$@"; do
        pkg=${spec%%=*}
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
           || [ ! -x "${spec#*=}" ]; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        # Do not let the vsftpd package start a system-wide daemon (we run our
        # own instances inside the lab namespace): a temporary policy-rc.d,
        # only if the machine has none, removed right after the install (and
        # by the trap).
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\n# temporary, from exfilwatch %s\nexit 101\n' "$LAB_SCRIPT" > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            LAB_POLICY_RC=1
        fi
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        if [ "$LAB_POLICY_RC" = 1 ]; then
            rm -f /usr/sbin/policy-rc.d
            LAB_POLICY_RC=0
        fi
    fi
    for spec in "$@"; do
        [ -x "${spec#*=}" ] || die "missing ${spec#*=} (${spec%%=*})"
    done
}

# lab_kill: stops everything the lab runs and deletes its namespaces (also
# between two scenarios); the names stay set, so lab_netns_up can follow.
lab_kill() {
    local pid ns
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    # anything still running inside our own two namespaces was started by us
    # (vsftpd session processes, browser helpers)
    for ns in "$HNS" "$RNS"; do
        [ -n "$ns" ] || continue
        if ip netns list 2>/dev/null | grep -qw -- "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

lab_cleanup() {
    local rc=$?
    set +e
    lab_kill
    if [ "$LAB_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$LAB_KEEP_WORK" = 1 ]; then
            log "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    [ "$rc" -ne 0 ] && log "FAILED (exit $rc); lab cleaned up"
    exit "$rc"
}

lab_traps() {
    trap lab_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

inh() { ip netns exec "$HNS" "$@"; }
inr() { ip netns exec "$RNS" "$@"; }

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
    local t=$(($1 * 10)) what=$2
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        t=$((t - 1))
        [ "$t" -gt 0 ] || die "timed out waiting for $what"
        sleep 0.1
    done
}

no_tentative() {  # no_tentative NS DEV
    [ -z "$(ip -n "$1" -6 addr show dev "$2" tentative)" ]
}

listening() {  # listening NS PORT
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ]
}

lab_bg() {  # lab_bg LOGFILE NAMESPACE CMD...   (background, pid in PIDS)
    local logf=$1 ns=$2
    shift 2
    # a simple command in the background: $! is the program itself (ip netns
    # exec and unshare exec, they do not fork), so kill reaches it
    ip netns exec "$ns" "$@" >"$logf" 2>&1 &
    PIDS+=("$!")
}

# lab_netns_up: the two namespaces and the veth pair, addressed, checked by
# ping both ways over IPv4 and IPv6, with no address still tentative.
lab_netns_up() {
    ip netns add "$HNS"
    ip netns add "$RNS"
    ip link add "$VH" netns "$HNS" type veth peer name "$VR" netns "$RNS"
    local ns dev
    for ns in "$HNS" "$RNS"; do
        ip -n "$ns" link set lo up
        # quieter link: no router solicitations (there is no router anyway)
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.router_solicitations=0 \
            net.ipv6.conf.default.router_solicitations=0
    done
    for dev in "$HNS:$VH" "$RNS:$VR"; do
        ns=${dev%%:*} dev=${dev#*:}
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.router_solicitations=0"
        ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off >/dev/null
    done
    ip -n "$HNS" addr add "$H4/24" dev "$VH"
    ip -n "$HNS" addr add "$H6/64" dev "$VH" nodad
    ip -n "$RNS" addr add "$R4/24" dev "$VR"
    ip -n "$RNS" addr add "$R6/64" dev "$VR" nodad
    ip -n "$HNS" link set "$VH" up
    ip -n "$RNS" link set "$VR" up
    wait_for 10 "IPv4 ping host->remote" inh ping -n -c1 -W1 "$R4"
    wait_for 10 "IPv6 ping host->remote" inh ping -n -c1 -W1 "$R6"
    wait_for 10 "IPv4 ping remote->host" inr ping -n -c1 -W1 "$H4"
    wait_for 10 "IPv6 ping remote->host" inr ping -n -c1 -W1 "$H6"
    # link-local addresses still do DAD: wait until nothing is tentative
    wait_for 10 "IPv6 DAD (host)" no_tentative "$HNS" "$VH"
    wait_for 10 "IPv6 DAD (remote)" no_tentative "$RNS" "$VR"
}

# lab_accounts ETCDIR NAME:UID:GECOS:HOME:SHELL:SHADOW-HASH...: lab copies of
# /etc/passwd, group and shadow with these users added (each with its own
# group), for bind-mounting over the real ones in a private mount namespace.
lab_accounts() {
    local etc=$1 u name uid gecos home shell hash names=""
    shift
    mkdir -p "$etc"
    for u in "$@"; do names+="${names:+|}${u%%:*}"; done
    grep -vE "^($names):" /etc/passwd > "$etc/passwd"
    grep -vE "^($names):" /etc/group > "$etc/group"
    grep -vE "^($names):" /etc/shadow > "$etc/shadow"
    for u in "$@"; do
        IFS=: read -r name uid gecos home shell hash <<< "$u"
        echo "$name:x:$uid:$uid:$gecos:$home:$shell" >> "$etc/passwd"
        echo "$name:x:$uid:" >> "$etc/group"
        echo "$name:$hash:19000:0:99999:7:::" >> "$etc/shadow"
    done
    chmod 644 "$etc/passwd" "$etc/group"
    chmod 640 "$etc/shadow"
}

# lab_http NAMESPACE BIND PORT FILES-DIR LOG ERRFILE: captures/lab/upload_server.py
lab_http() {
    lab_bg "$6" "$1" python3 "$LAB/upload_server.py" --bind "$2" --port "$3" --files "$4" --log "$5"
}

# lab_ftp_dirs DIR: the FTP user's home DIR/home and vsftpd's empty secure
# chroot DIR/empty
lab_ftp_dirs() {
    mkdir -p "$1/home" "$1/empty"
    chmod 555 "$1/empty"
    chown -R "$FTP_UID:$FTP_UID" "$1/home"
}

# lab_vsftpd ERRFILE NAMESPACE FTP-DIR [ETCDIR] -- VSFTPD-OPTIONS...: vsftpd
# from captures/lab/vsftpd.conf, logging to FTP-DIR/vsftpd.log. With ETCDIR
# (from lab_accounts) it runs in a private mount namespace of its own with
# those account files bind-mounted; without, the caller's are used.
lab_vsftpd() {
    local err=$1 ns=$2 ftp=$3 etc=""
    shift 3
    if [ "$1" != -- ]; then etc=$1; shift; fi
    shift
    local cmd=(vsftpd "$LAB/vsftpd.conf" -osecure_chroot_dir="$ftp/empty" -ovsftpd_log_file="$ftp/vsftpd.log" "$@")
    if [ -z "$etc" ]; then
        lab_bg "$err" "$ns" "${cmd[@]}"
        return
    fi
    # shellcheck disable=SC2016
    lab_bg "$err" "$ns" unshare --mount --propagation private \
        sh -c 'mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group &&
               mount --bind "$1/shadow" /etc/shadow && shift && exec "$@"' sh "$etc" "${cmd[@]}"
}
