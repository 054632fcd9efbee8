# Build and test learning-ebpf-rs in a container: `make docker-test` builds
# this image and runs the suite in it, with the `docker run` flags that
# README.md ("Docker") explains. The container shares the host's kernel: the
# programs load into it, so the flags give the container the privileges BPF
# needs.
ARG BASE_IMAGE=rust:1-bookworm
FROM ${BASE_IMAGE}

# PEM certificates to trust besides Debian's, for a network whose proxy
# signs with its own authority: --build-arg EXTRA_CA_CERTS="$(cat ca.crt)".
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
		printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/extra.crt && \
		update-ca-certificates >/dev/null; \
	fi

# The packages, Rust components and book tools of `make setup`, from the
# same script. The mounts wait for run time (a build cannot mount), and so
# does the doctor (it loads programs).
COPY scripts/setup.sh /tmp/setup.sh
RUN SETUP_SKIP_MOUNTS=1 SETUP_SKIP_DOCTOR=1 /tmp/setup.sh && \
	rm -rf /var/lib/apt/lists/* /tmp/setup.sh "$CARGO_HOME/registry"

# The crates, in a layer of their own: editing the sources does not fetch
# them again, and the container builds without a network.
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY testkit/Cargo.toml testkit/
COPY benches benches
RUN mkdir -p src testkit/src && touch src/lib.rs testkit/src/lib.rs && \
	cargo fetch --locked && rm -r src testkit/src

COPY . .
# bpffs, tracefs, securityfs and cgroup2 are mounted when the container
# starts (docker/entrypoint.sh); then the command runs: the test suite
# unless another is given.
ENTRYPOINT ["/src/docker/entrypoint.sh"]
CMD ["make", "test"]
