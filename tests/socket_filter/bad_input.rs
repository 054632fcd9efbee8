//! Bad input: one line, a non-zero exit. The filter lives and dies with
//! the socket, so nothing can be left attached.

use testkit::{assert_bad_args, require_privileges, BadInput, Exit};

use crate::BIN;

#[test]
fn bad_input_gives_one_line() {
    require_privileges!("bad_input_gives_one_line");
    let cases = [
        BadInput {
            name: "an unknown word",
            args: &["-i", "no-such-if0", "tcp", "or", "udp"],
            exit: Exit::Code(1),
            says: "'or' is not supported",
        },
        BadInput {
            name: "a port out of range",
            args: &["-i", "no-such-if0", "port", "70000"],
            exit: Exit::Code(1),
            says: "port '70000' is not a number from 1 to 65535",
        },
        BadInput {
            name: "a malformed host",
            args: &["-i", "no-such-if0", "host", "10.0.0"],
            exit: Exit::Code(1),
            says: "host '10.0.0' is not an IPv4 or IPv6 address",
        },
        BadInput {
            name: "a word missing its value",
            args: &["-i", "no-such-if0", "udp", "port"],
            exit: Exit::Code(1),
            says: "'port' needs a port number",
        },
        BadInput {
            name: "an unknown interface",
            args: &["-i", "no-such-if0", "udp"],
            exit: Exit::Code(1),
            says: "no-such-if0",
        },
        BadInput {
            name: "no interface and no UDP port",
            args: &["udp"],
            exit: Exit::Code(2),
            says: "--iface",
        },
        BadInput {
            name: "a snap length of zero",
            args: &["-i", "no-such-if0", "-s", "0"],
            exit: Exit::Code(2),
            says: "--snaplen",
        },
        BadInput {
            name: "a prefix too long",
            args: &["--udp", "9000", "--prefix", "0123456789abcdefg"],
            exit: Exit::Code(1),
            says: "at most 16",
        },
    ];
    assert_bad_args(BIN, &cases);
}
