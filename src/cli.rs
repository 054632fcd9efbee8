//! Command-line plumbing every binary uses: argument parsing, one-line
//! errors, libbpf's log, the options of the reporting tools.

use std::io::Write;
use std::process::exit;

use libbpf_rs::PrintLevel;

/// `[INTERVAL] [COUNT]`, as bcc's tools take them, and `--json`: the
/// options of every tool that reports at intervals (counters or
/// histograms). `--interval SECS` and `-c/--count N` say the same as the
/// positional forms. Flatten it into a binary's arguments with
/// `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Seconds between reports (default: every second for counters; for a
    /// histogram, one at Ctrl-C)
    #[arg(value_name = "INTERVAL", value_parser = clap::value_parser!(u64).range(1..))]
    interval: Option<u64>,
    /// Number of reports, then exit (default: until Ctrl-C)
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// The same as INTERVAL
    #[arg(
        long = "interval",
        value_name = "SECS",
        conflicts_with = "interval",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    interval_flag: Option<u64>,
    /// The same as COUNT
    #[arg(
        short = 'c',
        long = "count",
        value_name = "N",
        conflicts_with = "count",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    count_flag: Option<u64>,
    /// Print each report as one JSON object per line
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    /// The interval given, in seconds (None: not given).
    pub fn interval_secs(&self) -> Option<u64> {
        self.interval.or(self.interval_flag)
    }

    /// The interval given, or `default_secs`.
    pub fn interval_or(&self, default_secs: u64) -> std::time::Duration {
        std::time::Duration::from_secs(self.interval_secs().unwrap_or(default_secs))
    }

    /// How many reports to print (None: until Ctrl-C).
    pub fn count(&self) -> Option<u64> {
        self.count.or(self.count_flag)
    }
}

/// Parses the command line. A usage error prints clap's first line (the one
/// that says what is wrong) and exits with status 2; `--help` and `--version`
/// print in full and exit 0.
pub fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            // clap's message is its first paragraph (then comes usage):
            // fold that paragraph into one line.
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            exit(2);
        }
        Err(e) => e.exit(),
    }
}

/// Runs a binary's body. An error is printed as one line, its context chain
/// joined by ": ", and the process exits 1. The body's values are dropped
/// before exiting, so attachments are detached on the error path too.
pub fn run(body: impl FnOnce() -> anyhow::Result<()>) -> ! {
    let result = body();
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit(1);
        }
    }
}

/// [`run`] for a binary whose body decides its exit status (a guard that
/// exits with the status of the command it ran).
pub fn run_status(body: impl FnOnce() -> anyhow::Result<i32>) -> ! {
    let result = body();
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit(1);
        }
    }
}

fn print_to_stderr(_level: PrintLevel, msg: String) {
    eprint!("{msg}");
}

/// libbpf's own messages. With `verbose`, everything down to debug level goes
/// to stderr, the verifier log included; without it libbpf stays quiet and
/// our one-line errors speak for it.
pub fn init_libbpf_log(verbose: bool) {
    if verbose {
        libbpf_rs::set_print(Some((PrintLevel::Debug, print_to_stderr)));
    } else {
        libbpf_rs::set_print(None);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ReportArgs;

    #[derive(Parser)]
    struct Tool {
        #[command(flatten)]
        report: ReportArgs,
    }

    fn parse(args: &[&str]) -> Result<ReportArgs, clap::Error> {
        Tool::try_parse_from(std::iter::once("tool").chain(args.iter().copied())).map(|t| t.report)
    }

    #[test]
    fn interval_and_count_either_way() {
        for args in [
            &["5", "3"][..],
            &["--interval", "5", "-c", "3"],
            &["5", "--count", "3"],
        ] {
            let r = parse(args).unwrap();
            assert_eq!(
                (r.interval_secs(), r.count()),
                (Some(5), Some(3)),
                "{args:?}"
            );
        }
        let r = parse(&[]).unwrap();
        assert_eq!((r.interval_secs(), r.count()), (None, None));
        assert_eq!(r.interval_or(1), std::time::Duration::from_secs(1));
        for bad in [
            &["0"][..],
            &["5", "--interval", "5"],
            &["1", "2", "-c", "2"],
            &["-c", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
