#!/usr/bin/env bash
# make demo-tc_classifier: tc_classifier between two network namespaces.
# Needs no real interface and changes nothing outside the namespaces, which
# it removes on exit (also on Ctrl-C or an error).
DEMO=demo-tc_classifier
source "$(dirname "$0")/common.sh"

# Two "hosts" joined by a veth pair: A (10.11.0.1) and B (10.11.0.2).
netns A a
netns B b
link "$A" veth-a 10.11.0.1/24 "$B" veth-b 10.11.0.2/24

say "tc_classifier on veth-a in namespace $A, dropping port 9000"
nsenter --net="/run/netns/$A" "$TARGET/tc_classifier" -i veth-a --drop-port 9000 --interval 2 --count 1 2>"$LOG" &
pid=$!
PIDS+=("$pid")
wait_for "$LOG" "Hit Ctrl-C"
sed 's/^/  /' "$LOG"

say "B pings A 3 times, sends 5 UDP datagrams to port 8000 and 5 to port 9000"
in_ns "$B" ping -q -c 3 -i 0.2 10.11.0.1 | tail -n 2
for _ in 1 2 3 4 5; do
	in_ns "$B" bash -c 'echo hello > /dev/udp/10.11.0.1/8000; echo hello > /dev/udp/10.11.0.1/9000'
done

wait "$pid"
PIDS=()
tail -n +2 "$LOG" | sed 's/^/  /' # what it said on exit
echo
echo "udp ingress counts 10 packets, 5 of them dropped (port 9000); icmp is counted both ways."
echo "Read docs/01-tc_classifier.md for what happened and why."
