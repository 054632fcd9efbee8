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
	# A second Ctrl-C must not cut the clean-up short.
	trap '' INT TERM
	# Ctrl-C the lessons first, so that they detach and unpin themselves,
	# and give each up to 10 s to be gone.
	for pid in "${PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# netns VAR NAME: a namespace (unique to this run) with its loopback up;
# its full name goes into the variable VAR.
netns() {
	local name="lebpf-demo-$2-$$"
	ip netns add "$name"
	NAMESPACES+=("$name")
	ip -n "$name" link set lo up
	# New namespaces copy the host's IPv4 forwarding: start from off.
	ip netns exec "$name" sysctl -qw net.ipv4.ip_forward=0
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
