#!/usr/bin/env bash
# `make docker-test`: builds the image from the Dockerfile and runs the test
# suite in a container, with the `docker run` flags that README.md
# ("Docker") explains. Then it removes what it made: the images, and the
# Docker engine if it started one.
#
# Where no engine runs, it installs Debian's (docker.io) and starts one of
# its own, on a socket and in a directory of its own, with no bridge and no
# iptables rules, so the host's networking is left alone. Where the base
# image (rust:1-bookworm) cannot be pulled, it builds a stand-in: Debian
# bookworm from debootstrap plus rustup (docker/rust-bookworm.Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=learning-ebpf-rs:test
BASE=rust:1-bookworm
STANDIN=learning-ebpf-rs-base:rust-1-bookworm
DEBIAN=learning-ebpf-rs-base:debootstrap-bookworm
WORK=/var/tmp/learning-ebpf-rs-docker

if [ "$(id -u)" -ne 0 ]; then
	echo "make docker-test needs root: it may install and start a Docker engine (try: sudo make docker-test)"
	exit 1
fi

dockerd_pid=""
made_images=()
cleanup() {
	set +e
	if [ ${#made_images[@]} -gt 0 ]; then
		docker rmi -f "${made_images[@]}" >/dev/null 2>&1
	fi
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
		# What the engine left mounted under its directories (netns files).
		awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_install() { # package...
	echo "installing: $*"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

phase_start=$SECONDS
phase() { # name: print how long the phase that ends here took
	echo "docker-test: $1 took $((SECONDS - phase_start)) s"
	phase_start=$SECONDS
}

# 1. An engine: the one running, or one of our own.
command -v docker >/dev/null || apt_install docker.io
if ! docker info >/dev/null 2>&1; then
	command -v dockerd >/dev/null || apt_install docker.io
	rm -rf "$WORK" && mkdir -p "$WORK"
	flags=(--iptables=false --bridge=none --data-root "$WORK/data" --exec-root "$WORK/exec"
		--pidfile "$WORK/dockerd.pid" -H "unix://$WORK/docker.sock")
	# On a cgroup v1 host with real-time group scheduling, containers get no
	# real-time time unless their engine's cgroup has some to give.
	if [ -f /sys/fs/cgroup/cpu/cpu.rt_runtime_us ]; then
		flags+=(--cpu-rt-runtime=500000)
	fi
	dockerd "${flags[@]}" >"$WORK/dockerd.log" 2>&1 &
	dockerd_pid=$!
	export DOCKER_HOST="unix://$WORK/docker.sock"
	for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
	docker info >/dev/null 2>&1 || { echo "dockerd did not start: $(tail -n 1 "$WORK/dockerd.log")"; exit 1; }
	echo "docker-test: started dockerd $(docker version -f '{{.Server.Version}}') (pid $dockerd_pid)"
fi
phase "engine"

# The host's own certificate authorities, for the registries the build uses.
ca_certs=""
for crt in /usr/local/share/ca-certificates/*.crt; do
	[ -f "$crt" ] && ca_certs+="$(cat "$crt")"$'\n'
done

# 2. The base image: pulled, or the stand-in.
base=$BASE
if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! docker pull -q "$BASE" >/dev/null 2>&1; then
	echo "docker-test: $BASE cannot be pulled; building a stand-in from Debian's packages"
	command -v debootstrap >/dev/null || apt_install debootstrap
	mkdir -p "$WORK"
	mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
	debootstrap --variant=minbase --include=ca-certificates,curl,gcc,libc6-dev,make,git \
		bookworm "$WORK/root" "${mirror:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" 2>&1 ||
		{ echo "debootstrap failed: $(tail -n 1 "$WORK/debootstrap.log")"; exit 1; }
	# The sources of the official Debian images.
	printf 'deb http://deb.debian.org/debian %s main\n' bookworm bookworm-updates >"$WORK/root/etc/apt/sources.list"
	echo 'deb http://deb.debian.org/debian-security bookworm-security main' >>"$WORK/root/etc/apt/sources.list"
	rm -rf "$WORK"/root/var/cache/apt/archives/*.deb "$WORK"/root/var/lib/apt/lists/*
	tar -C "$WORK/root" -c . | docker import - "$DEBIAN" >/dev/null
	made_images+=("$DEBIAN")
	rm -rf "$WORK/root"
	docker build -q --network host -f docker/rust-bookworm.Dockerfile \
		--build-arg DEBIAN_IMAGE="$DEBIAN" --build-arg EXTRA_CA_CERTS="$ca_certs" \
		-t "$STANDIN" docker >/dev/null
	made_images+=("$STANDIN")
	base=$STANDIN
fi
phase "base image ($base)"

# 3. The project's image.
docker build -q --network host --build-arg BASE_IMAGE="$base" \
	--build-arg EXTRA_CA_CERTS="$ca_certs" -t "$IMAGE" . >/dev/null
made_images+=("$IMAGE")
phase "docker build ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}'))"

# 4. The suite, with README.md's flags (see "Docker" there for each).
run=(docker run --rm --pid host --network host
	--cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined
	--security-opt systempaths=unconfined
	--device /dev/net/tun) # the security lessons' tests write to a tun device
# A capability that root itself lacks here cannot be given (some sandboxes
# take CAP_SYS_RESOURCE away): drop those from ALL.
caps=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
	LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
	SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
	SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
	MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
	CHECKPOINT_RESTORE)
bnd=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
for i in "${!caps[@]}"; do
	[ $((bnd >> i & 1)) -eq 1 ] || run+=(--cap-drop "${caps[i]}")
done
if [ "$(docker info -f '{{.CgroupVersion}}')" = 1 ] && [ -f /sys/fs/cgroup/cpu/cpu.rt_runtime_us ]; then
	run+=(--cpu-rt-runtime=400000)
fi
[ -z "${CI:-}" ] || run+=(-e CI="$CI")
echo "docker-test: ${run[*]} $IMAGE"
mkdir -p target
status=0
"${run[@]}" "$IMAGE" 2>&1 | tee target/docker-test.log || status=$?
phase "make test in the container"

# One line per test binary, as for the host and the VMs; compared with the
# host's run when that is newer than every source (make test, just before).
awk -v release="$(uname -r) (container)" -v secs=0 -f scripts/test-results.awk \
	target/docker-test.log >target/docker-results.txt
host=target/vm-results/host.txt
if [ -f "$host" ] && [ -z "$(find bpf src tests testkit -newer "$host" -print -quit)" ]; then
	if ! diff <(grep -v '^kernel ' "$host") <(grep -v '^kernel ' target/docker-results.txt); then
		echo "docker-test: the container's results (>) differ from the host's (<), above"
		exit 1
	fi
	echo "docker-test: every test binary did in the container what it did on the host"
fi
[ "$status" -eq 0 ] || { echo "docker-test: make test failed in the container (log: target/docker-test.log)"; exit 1; }
