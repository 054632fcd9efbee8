#!/usr/bin/env bash
# make demo: tc_classifier between two network namespaces. Needs no real
# interface and changes nothing outside the namespaces, which it removes on
# exit (also on Ctrl-C or an error).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "make demo needs root (it creates network namespaces and loads BPF): sudo make demo"
	exit 1
fi

BIN=target/debug/tc_classifier
A=lebpf-demo-a-$$
B=lebpf-demo-b-$$
pid=""

cleanup() {
	[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Two "hosts" joined by a veth pair: A (10.11.0.1) and B (10.11.0.2).
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add veth-a type veth peer name veth-b netns "$B"
ip -n "$A" addr add 10.11.0.1/24 dev veth-a
ip -n "$B" addr add 10.11.0.2/24 dev veth-b
ip -n "$A" link set veth-a up
ip -n "$B" link set veth-b up

echo "== tc_classifier on veth-a in namespace $A, dropping port 9000 =="
ip netns exec "$A" "$BIN" -i veth-a --drop-port 9000 --interval 2 --count 1 &
pid=$!
sleep 1

echo "== B pings A 3 times, sends 5 UDP datagrams to port 8000 and 5 to port 9000 =="
ip netns exec "$B" ping -q -c 3 -i 0.2 10.11.0.1 | tail -n 2
for _ in 1 2 3 4 5; do
	ip netns exec "$B" bash -c 'echo hello > /dev/udp/10.11.0.1/8000; echo hello > /dev/udp/10.11.0.1/9000'
done

wait "$pid"
pid=""
echo
echo "udp ingress counts 10 packets, 5 of them dropped (port 9000); icmp is counted both ways."
echo "Read docs/01-tc_classifier.md for what happened and why."
