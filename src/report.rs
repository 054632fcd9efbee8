//! What the reporting tools print: time stamps and JSON lines.

/// `secs` since the epoch as local wall-clock time, HH:MM:SS: the one
/// time-stamp helper every report uses.
pub fn local_time(secs: libc::time_t) -> String {
    // SAFETY: localtime_r only writes into the struct we pass.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// The local time now as HH:MM:SS, for report headers.
pub fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    local_time(now.as_secs() as libc::time_t)
}

/// `delta` per second over `secs` seconds; 0 when no time has passed (a
/// report right after the previous one), rather than infinity.
pub fn rate(delta: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        delta as f64 / secs
    } else {
        0.0
    }
}

/// Prints `value` as one line of JSON: the `--json` output of every tool.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)
        .map_err(|e| anyhow::anyhow!("encoding the JSON output: {e}"))?;
    println!("{line}");
    Ok(())
}

/// A row of a counters table: its JSON fields (Serialize) and its
/// fixed-width line under [`TableRow::header`].
pub trait TableRow: serde::Serialize {
    /// The column names, aligned as [`TableRow::line`] aligns the values.
    fn header() -> String;
    fn line(&self) -> String;
}

/// One report of the counting tools: the time, the seconds it covers, and
/// a row per counter. `--json` prints it as one object; otherwise the time,
/// the header and the rows.
#[derive(serde::Serialize)]
pub struct CountersReport<R> {
    pub time: String,
    pub interval_s: f64,
    pub counters: Vec<R>,
}

/// Prints the rows counted over the last `secs` seconds.
pub fn print_counters<R: TableRow>(counters: Vec<R>, secs: f64, json: bool) -> anyhow::Result<()> {
    let report = CountersReport {
        time: clock(),
        interval_s: secs,
        counters,
    };
    if json {
        return print_json(&report);
    }
    println!("\n{}\n{}", report.time, R::header());
    for row in &report.counters {
        println!("{}", row.line());
    }
    Ok(())
}
