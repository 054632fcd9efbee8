#!/usr/bin/env bash
# make demo-lwt_filter: lwt_filter on a router between two network
# namespaces. Needs no real interface and changes nothing outside the
# namespaces, which it removes on exit (also on Ctrl-C).
DEMO=demo-lwt_filter
source "$(dirname "$0")/common.sh"

# A client, a router and a server: 10.11.0.0/24 and 10.12.0.0/24; the
# server also holds 10.30.0.1 and 10.31.0.1, both reached through the router.
netns C client
netns R router
netns S server
link "$C" c0 10.11.0.2/24 "$R" r0 10.11.0.1/24
link "$R" r1 10.12.0.1/24 "$S" s0 10.12.0.2/24
ip -n "$S" addr add 10.30.0.1/32 dev lo
ip -n "$S" addr add 10.31.0.1/32 dev lo
ip -n "$C" route add default via 10.11.0.1
ip -n "$S" route add 10.11.0.0/24 via 10.12.0.1
in_ns "$R" sysctl -qw net.ipv4.ip_forward=1
OUT=$(mktemp)
trap 'rm -f "$OUT"; cleanup' EXIT
ip -n "$R" route add 10.31.0.0/24 via 10.12.0.2

say "lwt_filter on the router: its own route to 10.30.0.0/24, dropping port 9000"
nsenter --net="/run/netns/$R" "$TARGET/lwt_filter" --route 10.30.0.0/24 --via 10.12.0.2 \
	--deny-port 9000 --interval 2 --count 1 >"$OUT" 2>"$LOG" &
pid=$!
PIDS+=("$pid")
wait_for "$LOG" "Hit Ctrl-C"
sed 's/^/  /' "$LOG"
ip -n "$R" route show | sed 's/^/  /'

say "the client sends 3 datagrams each to 10.30.0.1 ports 8000 and 9000, and to 10.31.0.1 port 9000"
for _ in 1 2 3; do
	in_ns "$C" bash -c 'for p in 8000 9000; do echo hi > /dev/udp/10.30.0.1/$p; done; echo hi > /dev/udp/10.31.0.1/9000'
done

wait "$pid"
PIDS=()
sed 's/^/  /' "$OUT"
tail -n +2 "$LOG" | sed 's/^/  /' # what it said on exit
echo
echo "Port 9000 was dropped on the route to 10.30.0.0/24 only; 10.31.0.1 never met the program."
echo "Read docs/11-lwt_filter.md for what happened and why."
