#!/usr/bin/env bash
# make demo-xdp_firewall: xdp_firewall protecting host A from host B, two
# network namespaces joined by a veth pair. The firewall runs in A's
# namespace and is managed from this shell, as from a second terminal.
# Needs no real interface; removes everything on exit (also on Ctrl-C).
DEMO=demo-xdp_firewall
source "$(dirname "$0")/common.sh"

# A (10.12.0.1) and B, which sends from two addresses (.2 and .3).
netns A a
netns B b
link "$A" veth-a 10.12.0.1/24 "$B" veth-b 10.12.0.2/24
ip -n "$B" addr add 10.12.0.3/24 dev veth-b
FW="$TARGET/xdp_firewall"
PIN=/sys/fs/bpf/lebpf-demo-fw-$$

# ping -I SRC COUNT [INTERVAL]: B pings A from SRC; the summary line.
ping_from() {
	in_ns "$B" ping -q -n -I "$1" -c "$2" -i "${3:-0.05}" -W 1 10.12.0.1 |
		grep 'packets transmitted' || true
}

say "xdp_firewall on veth-a in A: at most 50 packets/s per source (burst 50)"
echo "\$ nsenter --net=/run/netns/$A $FW -i veth-a --rate 50 --pin $PIN --interval 3600"
# nsenter --net, not ip netns exec: the pins in /sys/fs/bpf stay visible
# to the management commands below.
nsenter --net="/run/netns/$A" "$FW" -i veth-a --rate 50 --pin "$PIN" --interval 3600 2>"$LOG" >/dev/null &
PIDS+=($!)
wait_for "$LOG" "Hit Ctrl-C"
sed 's/^/  /' "$LOG"

say "B pings A 10 times from each of its addresses"
ping_from 10.12.0.2 10
ping_from 10.12.0.3 10

say "From another shell: block 10.12.0.2"
echo "\$ $FW block 10.12.0.2/32 --pin $PIN"
"$FW" block 10.12.0.2/32 --pin "$PIN"
ping_from 10.12.0.2 10
ping_from 10.12.0.3 10
echo "\$ $FW list --pin $PIN"
"$FW" list --pin "$PIN"

say "10.12.0.3 floods: 500 pings, 1 ms apart"
flood=$(ping_from 10.12.0.3 500 0.001)
echo "$flood"
# Expected through: the burst, then 50 per second of the flood.
echo "$flood" | awk '{ for (i = 1; i <= NF; i++) if ($i == "time") t = $(i + 1) / 1000 }
	END { printf "expected through: 50 (burst) + 50/s x %.1f s = %d\n", t, 50 + 50 * t }'

say "What the firewall counted"
echo "\$ $FW stats --pin $PIN"
"$FW" stats --pin "$PIN"

echo
echo "10.12.0.2's pings were dropped once it was blocked, and the flood was cut"
echo "to the rate. Read docs/02-xdp_firewall.md for how."
