//! What the reporting tools print: time stamps and JSON lines.

/// Local wall-clock time as HH:MM:SS, for report headers.
pub fn clock() -> String {
    // SAFETY: time() and localtime_r() only write into the struct we pass.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

/// Prints `value` as one line of JSON: the `--json` output of every tool.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)
        .map_err(|e| anyhow::anyhow!("encoding the JSON output: {e}"))?;
    println!("{line}");
    Ok(())
}
