//! lwt_filter proven in the kernel: BPF_PROG_TEST_RUN of the program on
//! built packets (each verdict, IPv4 and IPv6, truncation at every length),
//! the binary on a router between two namespaces (it drops exactly what the
//! policy says, only on its route, and removes the route on exit), and bad
//! input.

mod bad_input;
mod netns;
mod test_run;
mod topology;

const BIN: &str = env!("CARGO_BIN_EXE_lwt_filter");
