#!/usr/bin/env bash
# make demo-socket_filter: socket_filter capturing on a veth pair between
# two network namespaces. Needs no real interface and changes nothing
# outside the namespaces, which it removes on exit (also on Ctrl-C).
DEMO=demo-socket_filter
source "$(dirname "$0")/common.sh"

netns A a
netns B b
link "$A" veth-a 10.11.0.1/24 "$B" veth-b 10.11.0.2/24
OUT=$(mktemp)
trap 'rm -f "$OUT"; cleanup' EXIT

say "socket_filter on veth-a in namespace $A: 'udp port 9000', three packets"
nsenter --net="/run/netns/$A" "$TARGET/socket_filter" -i veth-a -c 3 udp port 9000 >"$OUT" 2>"$LOG" &
pid=$!
PIDS+=("$pid")
wait_for "$LOG" "Hit Ctrl-C"
sed 's/^/  /' "$LOG"

say "B pings A, then sends one UDP datagram to port 8000 and one to 9000, three times"
in_ns "$B" ping -q -c 1 10.11.0.1 >/dev/null
for i in 1 2 3; do
	in_ns "$B" bash -c "echo hello-$i > /dev/udp/10.11.0.1/8000; echo hello-$i > /dev/udp/10.11.0.1/9000"
done

wait "$pid"
PIDS=()
sed 's/^/  /' "$OUT"
tail -n +2 "$LOG" | sed 's/^/  /' # what it said on exit
echo
echo "Only the datagrams to port 9000 passed the filter; ping, ARP and port 8000 did not."
echo "Read docs/10-socket_filter.md for what happened and why."
