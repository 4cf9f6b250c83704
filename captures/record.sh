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
# The lab (namespaces, servers, cleanup trap) is captures/lab/lab.sh, shared
# with captures/record_scenarios.sh. Nothing leaves the two namespaces.
# Everything is rebuilt from scratch on each run; the new captures replace the
# old ones only after captures/lab/manifest.py has checked them with tshark
# against the payload files (and rewritten captures/MANIFEST.md). The
# namespaces, veths, servers and capture processes are removed on exit (trap),
# also on failure or Ctrl-C.
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
DEST="${EXFW_REC_OUT:-$HERE}"   # where the checked captures are installed

LAB_TAG=record LAB_SCRIPT=captures/record.sh LAB_KEEP_WORK=${EXFW_REC_KEEP_WORK:-0}
# shellcheck source=lab/lab.sh
. "$HERE/lab/lab.sh"     # the lab, its cleanup trap and helpers; sets LAB=captures/lab
lab_require_root

# --------------------------------------------------------------------------
# 1. lab state and cleanup
# --------------------------------------------------------------------------
HNS="exfw-rec-host-$$"
RNS="exfw-rec-remote-$$"
VH="exh$$"          # veth end in the host namespace
VR="exr$$"          # veth end in the remote namespace
H4=198.18.0.1 R4=198.18.0.2
H6=2001:2::1  R6=2001:2::2
lab_traps

# --------------------------------------------------------------------------
# 2. packages (installed only when missing): Debian package=a file we use
# --------------------------------------------------------------------------
PKGS=(tcpdump=/usr/bin/tcpdump tshark=/usr/bin/tshark
    wireshark-common=/usr/bin/dumpcap        # dumpcap, mergecap, editcap
    vsftpd=/usr/sbin/vsftpd curl=/usr/bin/curl wget=/usr/bin/wget python3=/usr/bin/python3
    iproute2=/usr/sbin/ip iputils-ping=/usr/bin/ping ethtool=/usr/sbin/ethtool procps=/usr/bin/ps)

# --------------------------------------------------------------------------
# 3. build the lab
# --------------------------------------------------------------------------
setup_lab() {
    log "creating namespaces $HNS / $RNS"
    lab_netns_up
    # the loopback of the "host" namespace plays macOS lo0 (MTU 16384)
    ip -n "$HNS" link set lo mtu 16384
    inh ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
    log "lab up: $VH $H4 $H6  <->  $VR $R4 $R6"
}

start_servers() {
    mkdir -p "$WORK/srv"
    # HTTP upload server: IPv4 :8080 and IPv6 :8443 in remote, loopback :8081 in host
    lab_http "$RNS" "$R4" 8080 "$WORK/payloads" "$WORK/http.log" "$WORK/srv/http8080.err"
    lab_http "$RNS" "$R6" 8443 "$WORK/payloads" "$WORK/http.log" "$WORK/srv/http8443.err"
    lab_http "$HNS" 127.0.0.1 8081 "$WORK/payloads" "$WORK/http.log" "$WORK/srv/http8081v4.err"
    lab_http "$HNS" ::1 8081 "$WORK/payloads" "$WORK/http.log" "$WORK/srv/http8081v6.err"

    # vsftpd: lab user only inside a private mount namespace (bind-mounted
    # copies of passwd/group/shadow); home directory in the work dir.
    local ftp="$WORK/ftp"
    lab_ftp_dirs "$ftp"
    chmod 755 "$WORK" "$ftp"
    lab_accounts "$ftp/etc" "$FTP_USER:$FTP_UID:exfw lab ftp user:$ftp/home:/bin/sh:$FTP_HASH"
    local inst
    for inst in v4:21 v6:21 v4:2121; do
        local fam=${inst%%:*} port=${inst#*:} opts
        if [ "$fam" = v4 ]; then
            opts=(-olisten=YES -olisten_ipv6=NO -olisten_address="$R4" -olisten_port="$port")
        else
            opts=(-olisten=NO -olisten_ipv6=YES -olisten_address6="$R6" -olisten_port="$port")
        fi
        lab_vsftpd "$WORK/srv/vsftpd-$fam-$port.err" "$RNS" "$ftp" "$ftp/etc" -- "${opts[@]}"
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
lab_install "${PKGS[@]}"

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
