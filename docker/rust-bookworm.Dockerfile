# A stand-in for the official rust:1-bookworm image, for machines that
# cannot pull it (no registry). scripts/docker-test.sh builds it FROM a
# Debian bookworm made with debootstrap and imported with `docker import`;
# the result has what the Dockerfile uses of the official image: Debian
# bookworm, gcc, git, curl, and the stable Rust toolchain installed by rustup
# under /usr/local/cargo and /usr/local/rustup.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}

# PEM certificates to trust besides Debian's (a proxy's own authority).
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
		printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/extra.crt && \
		update-ca-certificates >/dev/null; \
	fi

ENV RUSTUP_HOME=/usr/local/rustup \
	CARGO_HOME=/usr/local/cargo \
	PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# rustup-init, checked against the checksum published beside it.
RUN set -eu; \
	url=https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init; \
	cd /tmp; \
	curl -sSfO "$url"; \
	echo "$(curl -sSf "$url.sha256" | cut -d' ' -f1)  rustup-init" | sha256sum -c --quiet; \
	chmod +x rustup-init; \
	./rustup-init -y -q --no-modify-path --profile minimal --default-toolchain stable; \
	rm rustup-init; \
	chmod -R a+w "$RUSTUP_HOME" "$CARGO_HOME"; \
	rustc --version
