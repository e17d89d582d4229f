//! Reading a process's memory and CPU counters from `/proc` (proc(5)).
//!
//! Peak memory per scenario: before a scenario the harness writes `5` to
//! `/proc/<pid>/clear_refs`, which resets `VmHWM` to the current RSS (Linux ≥ 4.0),
//! and reads `VmHWM` afterwards. Where that write is refused, it falls back to
//! sampling `VmRSS` every 10 ms (see [`RssSampler`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, …), in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != field {
            return None;
        }
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// `(utime, stime)` in clock ticks from the text of `/proc/<pid>/stat`. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted after
/// the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the comm, field 3 (state) is index 0; utime is field 14, stime 15.
    let utime = fields.get(14 - 3)?.parse().ok()?;
    let stime = fields.get(15 - 3)?.parse().ok()?;
    Some((utime, stime))
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// User + system CPU seconds of a process (`None` = this process), all threads.
pub fn cpu_seconds(pid: Option<u32>) -> std::io::Result<f64> {
    let path = proc_path(pid, "stat");
    let text = std::fs::read_to_string(&path)?;
    let (u, s) = parse_stat_ticks(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("cannot parse {path}"),
        )
    })?;
    Ok((u + s) as f64 / clock_ticks_per_sec())
}

/// A `kB` field of a process's status file.
pub fn status_kib(pid: u32, field: &str) -> std::io::Result<u64> {
    let path = proc_path(Some(pid), "status");
    let text = std::fs::read_to_string(&path)?;
    parse_status_kib(&text, field).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no {field} in {path}"),
        )
    })
}

/// Resets `VmHWM` to the current RSS. Returns whether the kernel accepted it.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(proc_path(Some(pid), "clear_refs"), b"5").is_ok()
}

/// Peak-memory measurement over one scenario.
pub enum PeakMeter {
    /// `VmHWM` was reset; read it at the end.
    Hwm(u32),
    /// Sampling `VmRSS` in a thread.
    Sampled(RssSampler),
}

impl PeakMeter {
    /// Starts measuring the peak RSS of `pid`.
    pub fn start(pid: u32) -> Self {
        if reset_peak(pid) {
            PeakMeter::Hwm(pid)
        } else {
            PeakMeter::Sampled(RssSampler::start(pid))
        }
    }

    /// The method, for the report.
    pub fn method(&self) -> &'static str {
        match self {
            PeakMeter::Hwm(_) => "VmHWM after clear_refs reset",
            PeakMeter::Sampled(_) => "VmRSS sampled every 10 ms",
        }
    }

    /// Peak RSS in KiB since [`PeakMeter::start`].
    pub fn finish(self) -> Option<u64> {
        match self {
            PeakMeter::Hwm(pid) => status_kib(pid, "VmHWM").ok(),
            PeakMeter::Sampled(s) => s.finish(),
        }
    }
}

/// Samples `VmRSS` every 10 ms and keeps the maximum.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || loop {
            if let Ok(kib) = status_kib(pid, "VmRSS") {
                p.fetch_max(kib, Ordering::Relaxed);
            }
            if s.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        });
        RssSampler {
            stop,
            peak,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        match self.peak.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tberth\nUmask:\t0022\nState:\tS (sleeping)\n\
VmPeak:\t  123456 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    8765 kB\nThreads:\t3\n";

    #[test]
    fn status_fields() {
        assert_eq!(parse_status_kib(STATUS, "VmHWM"), Some(9876));
        assert_eq!(parse_status_kib(STATUS, "VmRSS"), Some(8765));
        assert_eq!(parse_status_kib(STATUS, "Threads"), Some(3));
        assert_eq!(parse_status_kib(STATUS, "VmSwap"), None);
        assert_eq!(parse_status_kib(STATUS, "Vm"), None);
    }

    #[test]
    fn stat_ticks_with_awkward_comm() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
1234 567 0 0 20 0 5 0 1000 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some((1234, 567)));
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_own_process() {
        assert!(cpu_seconds(None).is_ok());
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS").expect("VmRSS") > 0);
    }
}
