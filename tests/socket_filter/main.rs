//! socket_filter proven in the kernel: BPF_PROG_TEST_RUN of the capture
//! filter on built frames (every criterion, VLAN tags, truncation at every
//! length), the binary on a veth pair between two namespaces (exactly the
//! traffic the test sent, VLAN-tagged too, and a UDP socket's own filter),
//! and bad input.

mod bad_input;
mod classic;
mod netns;
mod test_run;

const BIN: &str = env!("CARGO_BIN_EXE_socket_filter");
