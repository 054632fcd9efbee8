# Build environment for learning-ebpf-rs: `make build` and `make test` work
# inside it. Loading programs needs privileges; see README.md, "Docker".
FROM rust:1-bookworm

# The same package list as `make setup`, from the same script.
COPY scripts/setup.sh /tmp/setup.sh
RUN SETUP_SKIP_MOUNTS=1 SETUP_SKIP_DOCTOR=1 /tmp/setup.sh && rm -rf /var/lib/apt/lists/* /tmp/setup.sh

WORKDIR /src
COPY . .
# Fetch and build the dependencies once, so `make test` starts quickly.
RUN cargo build --all-targets

# bpffs and tracefs are mounted at run time (the build cannot mount).
CMD ["sh", "-c", "mount -t bpf bpf /sys/fs/bpf 2>/dev/null; make test"]
