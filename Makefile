# learning-ebpf-rs: `make setup` once (as root), then `make test`.
SHELL := /bin/bash
# `make help` lists the targets.

ARCH ?= $(shell uname -m)
# Compiler flags and the kernel's architecture names: scripts/bpf-cflags,
# which build.rs reads too.
BPF_FLAGS := $(shell grep -v -e '^\#' -e '^arch:' -e '^$$' scripts/bpf-cflags)
KARCH := $(or $(shell sed -n 's/^arch:$(ARCH)=//p' scripts/bpf-cflags),$(ARCH))
BPF_CLANG ?= clang
CARGO ?= cargo
VMLINUX := headers/$(ARCH)/vmlinux.h
# The lessons in bpf/, the benchmarks' programs in bpf/bench/, the headers
# they share in bpf/lib/ (build.rs reads the same places).
BPF_SRCS := $(wildcard bpf/*.bpf.c bpf/bench/*.bpf.c)
BPF_HDRS := $(wildcard bpf/*.h bpf/lib/*.h)
RAW_OBJS := $(addprefix build/,$(notdir $(BPF_SRCS:.bpf.c=.bpf.o)))
C_FILES := bpf/*.c bpf/*.h bpf/lib/*.h bpf/bench/*.c tests/verifier/*.c
vpath %.bpf.c bpf bpf/bench

export BPF_CLANG

.PHONY: help setup check doctor vmlinux build test vm-test vm-matrix docker-test solutions book book-serve book-check demo $(addprefix demo-,$(DEMOS)) raw fmt lint bench clean

help:
	@echo "make setup    install the Debian packages and mount bpffs/tracefs (root, idempotent)"
	@echo "make test     build everything and run every test in the real kernel (root)"
	@echo "make doctor   what this machine can run: kernel features, mounts, privileges, tools (root)"
	@echo "make demo-LESSON  a lesson at work in network namespaces it makes: demo-tc_classifier"
	@echo "              (also plain \`make demo\`), demo-xdp_firewall, demo-load_balancer,"
	@echo "              demo-socket_filter, demo-lwt_filter"
	@echo "make vm-test KERNEL=6.1  the tests in a VM with one of Debian's kernels: 5.10, 6.1, 6.12 or newest (root)"
	@echo "make vm-matrix           the tests on all four, two VMs at a time (root)"
	@echo "make docker-test  build the image (Dockerfile) and run the tests in a container (root)"
	@echo "make solutions  apply each exercise's solution to a copy, build it, run its lesson's tests (root)"
	@echo "make book     build the book (chapters in docs/) into target/book; fails on a broken include or link"
	@echo "make book-serve  serve the book on http://localhost:3000, rebuilt on every change"
	@echo "make book-check  open every page of the built book in headless Chromium"
	@echo "make build    build the BPF objects, skeletons and binaries"
	@echo "make raw      build the BPF objects with plain clang into build/ (for tc, bpftool)"
	@echo "make vmlinux  regenerate headers/$(ARCH)/vmlinux.h from this kernel's BTF"
	@echo "make lint     clippy (warnings denied), rustfmt --check, clang-format check"
	@echo "make fmt      format Rust and BPF C"
	@echo "make bench    benchmarks (ratios against baselines measured in the same run)"

setup:
	@scripts/setup.sh

check:
	@scripts/check-env.sh

doctor: check
	@$(CARGO) run --quiet --bin doctor

vmlinux:
	@command -v bpftool >/dev/null || { echo "bpftool not found: run \`make setup\`"; exit 1; }
	@test -r /sys/kernel/btf/vmlinux || { echo "this kernel exposes no BTF (/sys/kernel/btf/vmlinux): use a kernel built with CONFIG_DEBUG_INFO_BTF=y"; exit 1; }
	@mkdir -p headers/$(ARCH)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX).tmp
	@mv $(VMLINUX).tmp $(VMLINUX)
	@echo "wrote $(VMLINUX) from the BTF of $$(uname -r)"

build: check
	$(CARGO) build --all-targets

# The run's summary per test binary goes to target/vm-results/host.txt, next
# to the VMs' (scripts/tested-on.sh reads them all).
test: check
	@mkdir -p target/vm-results
	set -o pipefail; $(CARGO) test --workspace --no-fail-fast -- --show-output 2>&1 | tee target/test.log
	@awk -v release="$$(uname -r)" -v secs=0 -f scripts/test-results.awk target/test.log >target/vm-results/host.txt
	@target/debug/doctor >target/vm-results/host.doctor 2>&1 || true

KERNEL ?= 6.12
vm-test: check
	@scripts/vm/test.sh $(KERNEL)

# Every kernel of the matrix (5.10, 6.1, 6.12, newest), two VMs at a time.
vm-matrix: check
	@scripts/vm/matrix.sh

# Starts a Docker engine if none runs, and stops it afterwards.
docker-test:
	@scripts/docker-test.sh

solutions: check
	@scripts/solutions.sh

book:
	@scripts/book.sh

book-serve: book
	mdbook serve book

book-check: book
	$(CARGO) test --test book -- --nocapture every_page

# One demo per network lesson, in network namespaces it makes and removes.
DEMOS := tc_classifier xdp_firewall load_balancer socket_filter lwt_filter
demo: demo-tc_classifier
$(addprefix demo-,$(DEMOS)): demo-%: check
	@$(CARGO) build -q --bin $*
	@scripts/demo/$*.sh

# The path without Rust: the same sources, plain clang, libbpf's headers from
# Debian's libbpf-dev. Load the result with `tc ... bpf obj F sec tc` or bpftool.
raw: $(RAW_OBJS)

build/%.bpf.o: %.bpf.c $(BPF_HDRS) $(VMLINUX) scripts/bpf-cflags
	@command -v $(BPF_CLANG) >/dev/null || { echo "$(BPF_CLANG) not found: run \`make setup\`"; exit 1; }
	@test -f /usr/include/bpf/bpf_helpers.h || { echo "libbpf headers not found: run \`make setup\` (installs libbpf-dev)"; exit 1; }
	@mkdir -p build
	$(BPF_CLANG) $(BPF_FLAGS) -D__TARGET_ARCH_$(KARCH) $(BPF_CFLAGS) \
		-I headers/$(ARCH) -I bpf -I bpf/lib -c $< -o $@

fmt:
	$(CARGO) fmt --all
	clang-format -i $(C_FILES)

lint: check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all --check
	clang-format --dry-run --Werror $(C_FILES)
	@scripts/solutions.sh --apply-only

bench: check
	$(CARGO) bench

clean:
	$(CARGO) clean
	rm -rf build
