//! The filter expression, tcpdump's words for the few things the BPF
//! program can check: `tcp`, `udp`, `icmp`, `icmp6`, `port N`, `host ADDR`,
//! `vlan ID`, all of which must hold (`and` between them is optional).

use std::net::IpAddr;

use anyhow::{bail, Result};

/// What the expression asks for; None matches anything.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub proto: Option<u8>,
    pub port: Option<u16>,
    pub host: Option<IpAddr>,
    pub vlan: Option<u16>,
}

const TERMS: &str = "tcp, udp, icmp, icmp6, port N, host ADDR, vlan ID, joined by 'and'";

impl Filter {
    pub fn parse(words: &[String]) -> Result<Filter> {
        let mut filter = Filter::default();
        let mut words = words.iter().map(String::as_str);
        while let Some(word) = words.next() {
            let mut value = |what: &str| match words.next() {
                Some(v) => Ok(v),
                None => bail!("'{word}' needs {what}"),
            };
            match word {
                "and" => {}
                "tcp" | "udp" | "icmp" | "icmp6" => {
                    let proto = match word {
                        "tcp" => 6,
                        "udp" => 17,
                        "icmp" => 1,
                        _ => 58,
                    };
                    if filter.proto.is_some_and(|p| p != proto) {
                        bail!("two protocols in one filter: a packet has one (there is no 'or')");
                    }
                    filter.proto = Some(proto);
                }
                "port" => {
                    let v = value("a port number")?;
                    match v.parse::<u16>() {
                        Ok(p) if p > 0 => filter.port = Some(p),
                        _ => bail!("port '{v}' is not a number from 1 to 65535"),
                    }
                }
                "host" => {
                    let v = value("an address")?;
                    match v.parse::<IpAddr>() {
                        Ok(a) => filter.host = Some(a),
                        Err(_) => bail!("host '{v}' is not an IPv4 or IPv6 address"),
                    }
                }
                "vlan" => {
                    let v = value("a VLAN id")?;
                    match v.parse::<u16>() {
                        Ok(id) if (1..=4094).contains(&id) => filter.vlan = Some(id),
                        _ => bail!("vlan '{v}' is not a VLAN id from 1 to 4094"),
                    }
                }
                "or" | "not" => bail!("'{word}' is not supported: every term must hold ({TERMS})"),
                _ => bail!("unknown word '{word}' in the filter (terms: {TERMS})"),
            }
        }
        Ok(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Filter> {
        let words: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        Filter::parse(&words)
    }

    #[test]
    fn reads_tcpdumps_words() {
        assert_eq!(parse("").unwrap(), Filter::default());
        let f = parse("udp and port 53 and host 2001:db8::1 vlan 100").unwrap();
        assert_eq!(f.proto, Some(17));
        assert_eq!(f.port, Some(53));
        assert_eq!(f.host, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(f.vlan, Some(100));
        assert_eq!(parse("tcp tcp").unwrap().proto, Some(6));
    }

    #[test]
    fn says_what_is_wrong() {
        for (expr, says) in [
            ("port", "'port' needs a port number"),
            ("port 0", "port '0' is not a number"),
            ("port 65536", "port '65536' is not a number"),
            ("host 10.0.0", "host '10.0.0' is not an IPv4"),
            ("vlan 4095", "vlan '4095' is not a VLAN id"),
            ("tcp or udp", "'or' is not supported"),
            ("tcp udp", "two protocols"),
            ("arp", "unknown word 'arp'"),
        ] {
            let e = parse(expr).unwrap_err().to_string();
            assert!(e.contains(says), "{expr}: {e}");
        }
    }
}
