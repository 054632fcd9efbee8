//! load_balancer proven in the kernel, in a topology of namespaces this test
//! makes: a client, the load balancer, and three backends that answer with
//! their own name. 1,000 TCP connections spread by weight and each stays on
//! one backend; draining and removing backends at run time; UDP flows; clean
//! up after exit.

mod bad_input;
mod netns;
mod test_run;
mod topology;

const BIN: &str = env!("CARGO_BIN_EXE_load_balancer");

/// On a kernel older than load_balancer's minimum, each test checks the
/// lesson's one-line refusal instead (`REFUSED <test>` in the results).
fn refused(test: &str) -> bool {
    testkit::kernel::lesson_refused(
        test,
        "load_balancer",
        std::process::Command::new(BIN)
            .args(["-i", "lebpf-none0", "--vip", "10.0.0.1:80"] as [&str; 4]),
    )
}
