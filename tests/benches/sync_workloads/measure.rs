//! Measuring: peak memory of a process, medians, and the results table.

use std::time::Duration;

/// Resets the peak resident memory of `pid` (this process for `None`), so that the next
/// reading covers only what runs in between (Linux; elsewhere peaks are not reported).
pub fn reset_peak(pid: Option<u32>) {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/clear_refs"),
        None => "/proc/self/clear_refs".to_owned(),
    };
    let _ = std::fs::write(path, "5");
}

/// The peak resident memory of `pid` since its last reset, in MB.
pub fn peak_mb(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The median of `times`.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The `p`th percentile (0 to 100) of `times`.
pub fn percentile(mut times: Vec<Duration>, p: usize) -> Duration {
    times.sort();
    let index = (times.len() * p).div_ceil(100).clamp(1, times.len()) - 1;
    times[index]
}

/// One workload's figures.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub items: usize,
    pub time: Duration,
    pub baseline: Duration,
    pub wire_bytes: u64,
    pub client_mb: f64,
    pub server_mb: f64,
    pub note: String,
}

pub fn header() {
    println!(
        "{:<24} {:>9} {:>9} {:>11} {:>9} {:>7} {:>7} {:>9} {:>9}  notes",
        "workload",
        "rows/ops",
        "time s",
        "per s",
        "raw s",
        "ratio",
        "B/row",
        "client MB",
        "server MB"
    );
}

pub fn line(workload: &str, f: &Figures) {
    let secs = f.time.as_secs_f64();
    println!(
        "{workload:<24} {:>9} {:>9.3} {:>11.0} {:>9.3} {:>6.1}x {:>7.1} {:>9.0} {:>9.0}  {}",
        f.items,
        secs,
        f.items as f64 / secs,
        f.baseline.as_secs_f64(),
        secs / f.baseline.as_secs_f64(),
        f.wire_bytes as f64 / f.items as f64,
        f.client_mb,
        f.server_mb,
        f.note,
    );
}
