# Sourced by the demos: root check, network namespaces that are removed
# on exit (also on Ctrl-C or an error), and the lesson binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
	echo "the demo needs root (it creates network namespaces and loads BPF): sudo make $DEMO"
	exit 1
fi

# The binaries `make` built; the tests pass their own.
TARGET=${LEBPF_TARGET:-target/debug}
NAMESPACES=()
PIDS=()
LOG=$(mktemp)

cleanup() {
	# A second Ctrl-C must not cut the clean-up short (it would interrupt
	# the waits below and leave a lesson still unpinning itself).
	trap '' INT TERM
	# Ctrl-C the lessons first, so that they detach and unpin themselves,
	# then wait for each (they are this shell's children).
	for pid in "${PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	# Another demo's `ip netns` running at the same moment can make one
	# attempt fail: try again, and say so if the namespace stays.
	for ns in "${NAMESPACES[@]}"; do
		for try in 1 2 3 4 5; do
			ip netns del "$ns" 2>/dev/null && break
			ip netns list | grep -qw "^$ns" || break
			[ "$try" = 5 ] && echo "could not remove network namespace $ns" >&2
			sleep 0.2
		done
	done
	rm -f "$LOG"
}
trap cleanup EXIT
# Ignore any further INT/TERM first: bash may run this trap twice for one
# Ctrl-C (for its own signal, and again for a child that died of it), and a
# second `exit` inside the EXIT trap would end the shell before clean-up.
trap 'trap "" INT TERM; exit 130' INT TERM

# in_ns NAME COMMAND...: COMMAND in network namespace NAME. `nsenter --net`
# changes only the network namespace. `ip netns exec` would also give the
# command a mount namespace of its own, with a fresh /sys (no /sys/fs/bpf)
# and a copy of every namespace mount, which keeps `ip netns del` from
# removing those while the command runs.
# (A process started in the background calls nsenter itself, so that $! is
# the process, not a subshell.)
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# netns VAR NAME: a namespace (unique to this run) with its loopback up;
# its full name goes into the variable VAR.
netns() {
	local name="lebpf-demo-$2-$$"
	ip netns add "$name"
	NAMESPACES+=("$name")
	ip -n "$name" link set lo up
	# New namespaces copy the host's IPv4 forwarding: start from off.
	in_ns "$name" sysctl -qw net.ipv4.ip_forward=0
	printf -v "$1" '%s' "$name"
}

# link NS_A DEV_A CIDR_A NS_B DEV_B CIDR_B: a veth pair between two
# namespaces, addressed and up.
link() {
	ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3" dev "$2"
	ip -n "$4" addr add "$6" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
}

# wait_for FILE TEXT: until TEXT appears in FILE (a lesson's stderr, such
# as $LOG), 20 s at most.
wait_for() {
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1:" >&2
	cat "$1" >&2
	exit 1
}

say() {
	printf '\n== %s\n' "$*"
}
