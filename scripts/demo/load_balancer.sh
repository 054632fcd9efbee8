#!/usr/bin/env bash
# make demo-load_balancer: load_balancer in front of three backends, each a
# network namespace whose server answers every line with its name. The
# balancer runs in its own namespace and is managed from this shell, as
# from a second terminal. Needs no real interface; removes everything on
# exit (also on Ctrl-C).
DEMO=demo-load_balancer
source "$(dirname "$0")/common.sh"

# client (10.40.0.2) -- c0 [lb] b1 b2 b3 -- backend i (10.41.i.2). The
# virtual address is outside every subnet: the client routes it to the lb.
VIP=10.49.0.100:80
netns CLIENT client
netns LB lb
link "$CLIENT" eth0 10.40.0.2/24 "$LB" c0 10.40.0.1/24
ip -n "$CLIENT" route add default via 10.40.0.1
BACKENDS=()
for i in 1 2 3; do
	netns ns "b$i"
	link "$ns" eth0 "10.41.$i.2/24" "$LB" "b$i" "10.41.$i.1/24"
	ip -n "$ns" route add default via "10.41.$i.1"
	# The server: each connection gets "b<i> <line>" back for every line.
	nsenter --net="/run/netns/$ns" socat TCP-LISTEN:8080,fork,reuseaddr EXEC:"scripts/demo/answer.sh b$i" &
	PIDS+=($!)
	BACKENDS+=("10.41.$i.2:8080")
done
in_ns "$LB" sysctl -qw net.ipv4.ip_forward=1
LBBIN="$TARGET/load_balancer"
PIN=/sys/fs/bpf/lebpf-demo-lb-$$

# connections N: N connections from the client, one line each; how many
# each backend answered. The timeouts are generous: each backend forks a
# shell per connection, which an emulated CPU (the kernel-matrix VMs) can
# take seconds to do.
connections() {
	for _ in $(seq "$1"); do
		echo hello | in_ns "$CLIENT" socat -t 10 - "TCP:$VIP,connect-timeout=10" | cut -d' ' -f1
	done | sort | uniq -c | awk '{ printf "  %s answered %d\n", $2, $1 }'
}

say "load_balancer in namespace lb: $VIP across b1, b2, b3 with weights 1, 2, 3"
echo "\$ nsenter --net=/run/netns/$LB $LBBIN -i c0 --vip $VIP --backend ${BACKENDS[0]},1 --backend ${BACKENDS[1]},2 --backend ${BACKENDS[2]},3 --pin $PIN --interval 3600"
# nsenter --net, not ip netns exec: the pins in /sys/fs/bpf stay visible
# to the management commands below.
nsenter --net="/run/netns/$LB" "$LBBIN" -i c0 --vip "$VIP" --backend "${BACKENDS[0]},1" \
	--backend "${BACKENDS[1]},2" --backend "${BACKENDS[2]},3" --pin "$PIN" --interval 3600 \
	2>"$LOG" >/dev/null &
PIDS=($! "${PIDS[@]}")
wait_for "$LOG" "Hit Ctrl-C"
sed 's/^/  /' "$LOG"

say "60 connections from the client"
connections 60

say "From another shell: drain b3"
echo "\$ $LBBIN drain ${BACKENDS[2]} --pin $PIN"
"$LBBIN" drain "${BACKENDS[2]}" --pin "$PIN"
connections 30

say "What the balancer counted"
echo "\$ $LBBIN stats --pin $PIN"
"$LBBIN" stats --pin "$PIN"

echo
echo "New connections were spread by weight (about 1:2:3; each CPU walks the"
echo "table on its own), and none went to b3 once it was draining."
echo "Read docs/07-load_balancer.md for how."
