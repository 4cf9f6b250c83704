#!/usr/bin/env bash
# Re-record every packet capture in captures/ from real tools in a two-namespace
# lab (see captures/README.md). Run as root:   sudo captures/record.sh
#
#   "host"   namespace  exfw-rec-host-$$    clients (stands for the user's Mac)
#            198.18.0.1/24  2001:2::1/64
#   "remote" namespace  exfw-rec-remote-$$  servers (python3 HTTP, vsftpd)
#            198.18.0.2/24  2001:2::2/64
#   joined by one veth pair, no default route, offloads off (MSS-sized segments).
#
# Nothing leaves the two namespaces. Everything is rebuilt from scratch on each
# run; the new captures replace the old ones only after captures/lab/manifest.py
# has checked them with tshark against the payload files (and rewritten
# captures/MANIFEST.md). The namespaces, veths, servers and capture processes
# are removed on exit (trap), also on failure or Ctrl-C.
#
# Environment:
#   EXFW_REC_KEEP_WORK=1   keep the temporary work directory (debugging)
#   EXFW_REC_OUT=DIR       install the new captures, payloads/, MANIFEST.md and
#                          expected/*.facts.json into DIR (created if missing)
#                          instead of captures/ (the committed files are not
#                          touched); used by captures/captures_test.go
set -euo pipefail

export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$HERE/lab"
DEST="${EXFW_REC_OUT:-$HERE}"   # where the checked captures are installed

if [ "$(id -u)" != 0 ]; then
    echo "record.sh: must run as root (sudo $0)" >&2
    exit 1
fi

log() { printf '[record] %s\n' "$*" >&2; }
die() { printf '[record] ERROR: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------------------
# 1. packages (installed only when missing)
# --------------------------------------------------------------------------
# Debian package -> a file it provides that we use
declare -A PKG_FILE=(
    [tcpdump]=/usr/bin/tcpdump
    [tshark]=/usr/bin/tshark
    [wireshark-common]=/usr/bin/dumpcap        # dumpcap, mergecap, editcap
    [vsftpd]=/usr/sbin/vsftpd
    [curl]=/usr/bin/curl
    [wget]=/usr/bin/wget
    [python3]=/usr/bin/python3
    [iproute2]=/usr/sbin/ip
    [iputils-ping]=/usr/bin/ping
    [ethtool]=/usr/sbin/ethtool
    [procps]=/usr/bin/ps
)
PKGS_ORDER=(tcpdump tshark wireshark-common vsftpd curl wget python3 iproute2 iputils-ping ethtool procps)

POLICY_RC_CREATED=0
install_missing() {
    local missing=() p
    for p in "${PKGS_ORDER[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
           || [ ! -x "${PKG_FILE[$p]}" ]; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    # Do not let the vsftpd package start a system-wide daemon (we run our own
    # instances inside the lab namespace): a temporary policy-rc.d, only if the
    # machine has none, removed again right after the install (and by the trap).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, from exfilwatch captures/record.sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$POLICY_RC_CREATED" = 1 ]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
}

# --------------------------------------------------------------------------
# 2. lab state and cleanup
# --------------------------------------------------------------------------
HNS="exfw-rec-host-$$"
RNS="exfw-rec-remote-$$"
VH="exh$$"          # veth end in the host namespace
VR="exr$$"          # veth end in the remote namespace
H4=198.18.0.1 R4=198.18.0.2
H6=2001:2::1  R6=2001:2::2
FTP_USER=exfwuser FTP_PASS=exfwpass FTP_UID=64123
# SHA-512 crypt of "exfwpass" with the fixed salt "exfwlab" (lab-only password)
FTP_HASH='$6$exfwlab$OJCAnbNOSSPtU16mILrjsEEflr02niCXsX3bQtUFNAdilGe0OjAHgNkWMf9XRYBCysevt1p9k..eYchj5Cmwv/'

WORK=""
PIDS=()            # every background process we started (servers, captures)

cleanup() {
    local rc=$? pid ns
    set +e
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    # anything still running inside our own two namespaces was started by us
    for ns in "$HNS" "$RNS"; do
        if ip netns list 2>/dev/null | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
            ip netns del "$ns" 2>/dev/null
        fi
    done
    if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${EXFW_REC_KEEP_WORK:-0}" = 1 ]; then
            log "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    [ "$rc" -ne 0 ] && log "FAILED (exit $rc); lab cleaned up"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

inh() { ip netns exec "$HNS" "$@"; }
inr() { ip netns exec "$RNS" "$@"; }

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
    local t=$(( $1 * 10 )) what=$2
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        t=$((t - 1))
        [ "$t" -gt 0 ] || die "timeout waiting for $what"
        sleep 0.1
    done
}

no_tentative() {  # no_tentative NS DEV
    [ -z "$(ip -n "$1" -6 addr show dev "$2" tentative)" ]
}

listening() {  # listening NS PORT
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ]
}

# --------------------------------------------------------------------------
# 3. build the lab
# --------------------------------------------------------------------------
setup_lab() {
    log "creating namespaces $HNS / $RNS"
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
    # the loopback of the "host" namespace plays macOS lo0 (MTU 16384)
    ip -n "$HNS" link set lo mtu 16384
    inh ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true

    wait_for 10 "IPv4 ping host->remote" inh ping -n -c1 -W1 "$R4"
    wait_for 10 "IPv6 ping host->remote" inh ping -n -c1 -W1 "$R6"
    wait_for 10 "IPv4 ping remote->host" inr ping -n -c1 -W1 "$H4"
    wait_for 10 "IPv6 ping remote->host" inr ping -n -c1 -W1 "$H6"
    # link-local addresses still do DAD: wait until nothing is tentative
    wait_for 10 "IPv6 DAD (host)" no_tentative "$HNS" "$VH"
    wait_for 10 "IPv6 DAD (remote)" no_tentative "$RNS" "$VR"
    log "lab up: $VH $H4 $H6  <->  $VR $R4 $R6"
}

start_bg() {  # start_bg LOGFILE NAMESPACE CMD...   (background, pid recorded)
    local logf=$1 ns=$2
    shift 2
    # a simple command in the background: $! is the program itself (ip netns
    # exec and unshare exec, they do not fork)
    ip netns exec "$ns" "$@" >"$logf" 2>&1 &
    PIDS+=("$!")
}

start_servers() {
    mkdir -p "$WORK/srv"
    # HTTP upload server: IPv4 :8080 and IPv6 :8443 in remote, loopback :8081 in host
    start_bg "$WORK/srv/http8080.err" "$RNS" python3 "$LAB/upload_server.py" \
        --bind "$R4" --port 8080 --files "$WORK/payloads" --log "$WORK/http.log"
    start_bg "$WORK/srv/http8443.err" "$RNS" python3 "$LAB/upload_server.py" \
        --bind "$R6" --port 8443 --files "$WORK/payloads" --log "$WORK/http.log"
    start_bg "$WORK/srv/http8081v4.err" "$HNS" python3 "$LAB/upload_server.py" \
        --bind 127.0.0.1 --port 8081 --files "$WORK/payloads" --log "$WORK/http.log"
    start_bg "$WORK/srv/http8081v6.err" "$HNS" python3 "$LAB/upload_server.py" \
        --bind ::1 --port 8081 --files "$WORK/payloads" --log "$WORK/http.log"

    # vsftpd: lab user only inside a private mount namespace (bind-mounted
    # copies of passwd/group/shadow); home directory in the work dir.
    local ftp="$WORK/ftp"
    mkdir -p "$ftp/home" "$ftp/empty" "$ftp/etc"
    chmod 755 "$WORK" "$ftp"
    chmod 555 "$ftp/empty"
    chown "$FTP_UID:$FTP_UID" "$ftp/home"
    { grep -v "^$FTP_USER:" /etc/passwd; echo "$FTP_USER:x:$FTP_UID:$FTP_UID:exfw lab ftp user:$ftp/home:/bin/sh"; } > "$ftp/etc/passwd"
    { grep -v "^$FTP_USER:" /etc/group; echo "$FTP_USER:x:$FTP_UID:"; } > "$ftp/etc/group"
    { grep -v "^$FTP_USER:" /etc/shadow; echo "$FTP_USER:$FTP_HASH:19000:0:99999:7:::"; } > "$ftp/etc/shadow"
    chmod 644 "$ftp/etc/passwd" "$ftp/etc/group"
    chmod 640 "$ftp/etc/shadow"
    local common=(-osecure_chroot_dir="$ftp/empty" -ovsftpd_log_file="$ftp/vsftpd.log")
    local inst
    for inst in v4:21 v6:21 v4:2121; do
        local fam=${inst%%:*} port=${inst#*:} opts
        if [ "$fam" = v4 ]; then
            opts=(-olisten=YES -olisten_ipv6=NO -olisten_address="$R4" -olisten_port="$port")
        else
            opts=(-olisten=NO -olisten_ipv6=YES -olisten_address6="$R6" -olisten_port="$port")
        fi
        start_bg "$WORK/srv/vsftpd-$fam-$port.err" "$RNS" unshare --mount --propagation private \
            sh -c 'mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group &&
                   mount --bind "$1/shadow" /etc/shadow && shift && exec "$@"' sh \
            "$ftp/etc" vsftpd "$LAB/vsftpd.conf" "${common[@]}" "${opts[@]}"
    done

    wait_for 10 "http :8080" listening "$RNS" 8080
    wait_for 10 "http :8443" listening "$RNS" 8443
    wait_for 10 "http lo :8081" listening "$HNS" 8081
    wait_for 10 "ftp :21" listening "$RNS" 21
    wait_for 10 "ftp :2121" listening "$RNS" 2121
    # both :21 listeners (v4 and v6)
    wait_for 10 "ftp :21 v4+v6" test "$(inr ss -Hltn 'sport = :21' | wc -l)" -eq 2
    wait_for 10 "http :8081 v4+v6" test "$(inh ss -Hltn 'sport = :8081' | wc -l)" -eq 2
    log "servers up (HTTP :8080 :8443, lo :8081; FTP :21 v4/v6, :2121)"
}

# --------------------------------------------------------------------------
# 4. capture helpers
# --------------------------------------------------------------------------
CAP_PID="" CAP_NAME=""
# cap_start NAME TOOL NS IFACE OUTFILE [extra args]
#   TOOL tcpdump -> classic pcap; dumpcap -> pcapng
cap_start() {
    CAP_NAME=$1
    local tool=$2 ns=$3 ifc=$4 out=$5
    shift 5
    local err="$WORK/cap-$(basename "$out").err"
    mkdir -p "$(dirname "$WORK/cmds/$CAP_NAME")"
    : > "$WORK/cmds/$CAP_NAME"
    if [ "$tool" = tcpdump ]; then
        ip netns exec "$ns" tcpdump -i "$ifc" -s 0 -U -n -w "$out" "$@" 2>"$err" &
    else
        ip netns exec "$ns" dumpcap -i "$ifc" -s 0 -n -q -w "$out" "$@" 2>"$err" &
    fi
    CAP_PID=$!
    PIDS+=("$CAP_PID")
    wait_for 10 "$tool on $ifc" grep -qE 'listening on|Capturing on' "$err"
    sleep 0.3
    local shown=$ifc
    [ "$ifc" = "$VH" ] && shown='<host-veth>'
    [ "$ifc" = "$VR" ] && shown='<remote-veth>'
    if [ "$tool" = tcpdump ]; then
        echo "tcpdump -i $shown -s 0 -U -n -w $(basename "$out")${*:+ $*}" >> "$WORK/cmds/$CAP_NAME.capture"
    else
        echo "dumpcap -i $shown -s 0 -n -q -w $(basename "$out")${*:+ $*}" >> "$WORK/cmds/$CAP_NAME.capture"
    fi
}

cap_stop() {
    sleep 1   # let the last FIN/ACKs go by
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=""
}

# c CMD... : run a client in the host namespace, from the client directory,
# and note the command line for MANIFEST.md
shq() {  # print the arguments as one shell-quoted command line
    local out="" a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+="$a "
        else
            out+="'${a//\'/\'\\\'\'}' "
        fi
    done
    printf '%s\n' "${out% }"
}

c() {
    local line
    line="$(shq "$@")"
    printf '%s\n' "${line//"$LAB"/captures/lab}" >> "$WORK/cmds/$CAP_NAME"
    (cd "$WORK/client" && ip netns exec "$HNS" "$@") >>"$WORK/clients.log" 2>&1 \
        || { cat "$WORK/clients.log" >&2; die "client failed: $*"; }
}

# --------------------------------------------------------------------------
# 5. the captures
# --------------------------------------------------------------------------
record_all() {
    local O="$WORK/out" H="http://$R4:8080" F="ftp://$FTP_USER:$FTP_PASS@$R4"
    local F6="ftp://$FTP_USER:$FTP_PASS@[$R6]"
    mkdir -p "$O/demo"

    log "1 http_curl_multipart.pcap"
    cap_start http_curl_multipart.pcap tcpdump "$HNS" "$VH" "$O/http_curl_multipart.pcap"
    c curl -fsS -o /dev/null -F file=@report.pdf -F note=hello "$H/upload"
    cap_stop

    log "2 http_curl_put_raw.pcap"
    cap_start http_curl_put_raw.pcap tcpdump "$HNS" "$VH" "$O/http_curl_put_raw.pcap"
    c curl -fsS -o /dev/null -T notes.txt "$H/put/"
    c curl -fsS -o /dev/null --data-binary @keys.tar "$H/upload/raw"
    cap_stop

    log "3 http_curl_chunked.pcap"
    cap_start http_curl_chunked.pcap tcpdump "$HNS" "$VH" "$O/http_curl_chunked.pcap"
    c curl -fsS -o /dev/null -H 'Transfer-Encoding: chunked' --data-binary @report.pdf "$H/upload/chunked"
    c curl -fsS -o /dev/null -H 'Transfer-Encoding: chunked' -T keys.tar "$H/put/chunked-keys.tar"
    c curl -fsS -o /dev/null -H 'Expect: 100-continue' --data-binary @keys.tar "$H/upload/expect"
    cap_stop

    log "4 http_wget_post.pcap"
    cap_start http_wget_post.pcap tcpdump "$HNS" "$VH" "$O/http_wget_post.pcap"
    c wget -q -O /dev/null --post-file=notes.txt "$H/upload/wget"
    c wget -q -O dl/report.pdf "$H/files/report.pdf"
    cap_stop

    log "5 http_python_keepalive.pcap"
    cap_start http_python_keepalive.pcap tcpdump "$HNS" "$VH" "$O/http_python_keepalive.pcap"
    c python3 "$LAB/py_clients.py" keepalive "$R4" 8080
    c python3 "$LAB/py_clients.py" multipart "$H/upload/urllib"
    cap_stop

    log "6 http_ipv6_port8443.pcap"
    cap_start http_ipv6_port8443.pcap tcpdump "$HNS" "$VH" "$O/http_ipv6_port8443.pcap"
    c curl -g -fsS -o /dev/null --data-binary @notes.txt "http://[$R6]:8443/upload/v6"
    c curl -g -fsS -o /dev/null -F file=@report.pdf "http://[$R6]:8443/upload/v6-form"
    cap_stop

    log "7 ftp_passive_stor_retr.pcap"
    cap_start ftp_passive_stor_retr.pcap tcpdump "$HNS" "$VH" "$O/ftp_passive_stor_retr.pcap"
    c curl -fsS -T report.pdf "$F/"
    c curl -fsS -o dl/ftp-report.pdf "$F/report.pdf"
    c curl -fsS -o dl/list.txt "$F/"
    cap_stop

    log "8 ftp_active_port.pcap"
    cap_start ftp_active_port.pcap tcpdump "$HNS" "$VH" "$O/ftp_active_port.pcap"
    c curl -fsS -P - -T notes.txt "$F/"
    c curl -fsS -P - -o dl/ftp-notes.txt "$F/notes.txt"
    c curl -fsS -P - --disable-eprt -T report.pdf "$F/active-report.pdf"
    c curl -fsS -P - --disable-eprt -o dl/active-report.pdf "$F/active-report.pdf"
    cap_stop

    log "9 ftp_pasv_noepsv.pcap"
    cap_start ftp_pasv_noepsv.pcap tcpdump "$HNS" "$VH" "$O/ftp_pasv_noepsv.pcap"
    c curl -fsS --disable-epsv -T keys.tar "$F/"
    cap_stop

    log "10 ftp_ipv6_epsv.pcap"
    cap_start ftp_ipv6_epsv.pcap tcpdump "$HNS" "$VH" "$O/ftp_ipv6_epsv.pcap"
    c curl -g -fsS -T notes.txt "$F6/v6-notes.txt"
    c curl -g -fsS -P - -T report.pdf "$F6/v6-active-report.pdf"
    cap_stop

    log "11 ftp_port2121.pcap"
    cap_start ftp_port2121.pcap tcpdump "$HNS" "$VH" "$O/ftp_port2121.pcap"
    c curl -fsS -T notes.txt "ftp://$FTP_USER:$FTP_PASS@$R4:2121/port2121-notes.txt"
    c curl -fsS -o dl/port2121-notes.txt "ftp://$FTP_USER:$FTP_PASS@$R4:2121/port2121-notes.txt"
    cap_stop

    log "12 lo0_null_http.pcap"
    cap_start lo0_null_http.pcap tcpdump "$HNS" lo "$WORK/lo_ethernet.pcap"
    c curl -fsS -o /dev/null -F file=@notes.txt http://127.0.0.1:8081/upload/lo
    c curl -g -fsS -o /dev/null -T report.pdf 'http://[::1]:8081/put/'
    cap_stop
    python3 "$LAB/eth_to_null.py" "$WORK/lo_ethernet.pcap" "$O/lo0_null_http.pcap"
    echo "python3 captures/lab/eth_to_null.py lo_ethernet.pcap lo0_null_http.pcap" >> "$WORK/cmds/lo0_null_http.pcap.capture"

    log "13 mixed.pcapng (Ethernet veth part + Linux cooked SLL2 'any' part, merged)"
    cap_start mixed.pcapng dumpcap "$HNS" "$VH" "$WORK/mixed-eth.pcapng"
    c curl -fsS -o /dev/null -F file=@report.pdf "$H/upload/mixed"
    cap_stop
    cap_start mixed.pcapng.part2 dumpcap "$RNS" any "$WORK/mixed-sll2.pcapng" -y LINUX_SLL2
    c curl -fsS -T notes.txt "$F/mixed-notes.txt"
    cap_stop
    cat "$WORK/cmds/mixed.pcapng.part2" >> "$WORK/cmds/mixed.pcapng"
    sed 's/^/(in the remote namespace) /' "$WORK/cmds/mixed.pcapng.part2.capture" >> "$WORK/cmds/mixed.pcapng.capture"
    rm -f "$WORK/cmds/mixed.pcapng.part2" "$WORK/cmds/mixed.pcapng.part2.capture"
    mergecap -F pcapng -w "$O/mixed.pcapng" "$WORK/mixed-eth.pcapng" "$WORK/mixed-sll2.pcapng"
    echo "mergecap -F pcapng -w mixed.pcapng mixed-eth.pcapng mixed-sll2.pcapng" >> "$WORK/cmds/mixed.pcapng.capture"

    log "14 demo/demo.pcapng"
    cap_start demo/demo.pcapng dumpcap "$HNS" "$VH" "$O/demo/demo.pcapng"
    c curl -fsS -o /dev/null -F 'document=@report.pdf;type=application/pdf' -F 'comment=Q3 board deck' "$H/upload"
    c python3 "$LAB/py_clients.py" put "$H/backup/keys.tar" keys.tar
    c wget -q -O dl/demo-notes.txt "$H/files/notes.txt"
    c curl -fsS -T notes.txt "$F/demo-notes.txt"
    cap_stop

    log "15 http_curl_multipart.pcap.gz"
    gzip -9 -n -c "$O/http_curl_multipart.pcap" > "$O/http_curl_multipart.pcap.gz"
}

# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
install_missing
for p in "${PKGS_ORDER[@]}"; do [ -x "${PKG_FILE[$p]}" ] || die "missing ${PKG_FILE[$p]} ($p)"; done

WORK="$(mktemp -d /tmp/exfw-rec.XXXXXX)"
mkdir -p "$WORK/cmds" "$WORK/client/dl" "$WORK/payloads"
python3 "$LAB/make_payloads.py" "$WORK/payloads" >&2
cp "$WORK/payloads/"* "$WORK/client/"

setup_lab
start_servers
record_all

log "verifying captures with tshark and writing MANIFEST.md"
python3 "$LAB/manifest.py" --captures "$WORK/out" --payloads "$WORK/payloads" \
    --cmds "$WORK/cmds" --server-log "$WORK/http.log" --ftp-log "$WORK/ftp/vsftpd.log" \
    --lab "$H4,$R4,$H6,$R6" --manifest "$WORK/MANIFEST.md" --facts "$WORK/expected"

# all good: install the new captures
mkdir -p "$DEST/demo" "$DEST/payloads" "$DEST/expected"
for f in "$WORK/out/"*.pcap "$WORK/out/"*.pcapng "$WORK/out/"*.gz "$WORK/out/demo/"*.pcapng \
         "$WORK/expected/"*.facts.json; do
    case $f in
        "$WORK/expected/"*) rel=expected/${f#"$WORK/expected/"} ;;
        *) rel=${f#"$WORK/out/"} ;;
    esac
    cp "$f" "$DEST/$rel.tmp"
    chmod 644 "$DEST/$rel.tmp"
    mv -f "$DEST/$rel.tmp" "$DEST/$rel"
done
cp "$WORK/payloads/"* "$DEST/payloads/"
cp "$WORK/MANIFEST.md" "$DEST/MANIFEST.md"

log "tshark summary (http.request / ftp.request.command):"
for f in "$DEST"/*.pcap "$DEST"/*.pcapng "$DEST"/demo/*.pcapng; do
    tshark -n -r "$f" -d tcp.port==2121,ftp -d tcp.port==8443,http -d tcp.port==8081,http \
        -Y 'http.request or ftp.request.command' -T fields -E separator=' ' \
        -e http.request.method -e http.request.uri -e ftp.request.command -e ftp.request.arg 2>/dev/null \
        | sed "s|^ *|  ${f#"$DEST/"}: |" >&2
done
log "done (in $DEST): $(du -ch "$DEST"/*.pcap "$DEST"/*.pcapng "$DEST"/*.gz "$DEST"/demo/*.pcapng | tail -1)"
