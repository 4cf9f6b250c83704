#!/bin/sh
# Records dns_dnsmasq.pcap, read by TestDNSFromRecordedCapture: dig asks a
# real dnsmasq on port 53, inside a private network namespace (loopback
# only), over UDP and TCP, while tcpdump captures. Needs root and the Debian
# packages dnsmasq-base, bind9-dnsutils and tcpdump.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/dns_dnsmasq.pcap
ns=exfilwatch-dnsrec-$$
ip netns add "$ns"
trap 'kill $dpid $tpid 2>/dev/null || true; ip netns del "$ns"' EXIT
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" dnsmasq --keep-in-foreground --listen-address=127.0.0.1 \
	--bind-interfaces --no-resolv --no-hosts --conf-file=/dev/null --pid-file= --local-ttl=300 \
	--host-record=files.example.test,198.18.0.10,2001:2::10 \
	--cname=cdn.example.test,files.example.test --cname=www.example.test,cdn.example.test \
	--address=/nx.example.test/ &
dpid=$!
ip netns exec "$ns" tcpdump -i lo -U -s 0 -w "$out" port 53 2>/dev/null &
tpid=$!
sleep 1
q() { ip netns exec "$ns" dig +tries=1 +time=2 @127.0.0.1 "$@" >/dev/null; }
q www.example.test A
q files.example.test AAAA
q nope.nx.example.test A
q +tcp www.example.test AAAA
sleep 1
kill $tpid
wait $tpid 2>/dev/null || true
