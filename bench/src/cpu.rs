//! CPU use of a process from `/proc/<pid>/stat` (user + system time), for the client (this process) and the broker
//! (`--server-pid`). Sampled once a second by the runner, so the cost is one small file read per second.

use std::time::Instant;

/// A reading of one process's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    ticks: u64,
}

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime from the text of a `/proc/<pid>/stat` file.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Reads the CPU time of `pid` (`None` = this process); `None` if the process is gone.
pub fn sample(pid: Option<u32>) -> Option<CpuSample> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    Some(CpuSample {
        at: Instant::now(),
        ticks: parse_stat_ticks(&text)?,
    })
}

/// Cores used on average between two samples (1.0 = one core fully busy).
pub fn cores_between(a: CpuSample, b: CpuSample) -> f64 {
    let wall = b.at.duration_since(a.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    b.ticks.saturating_sub(a.ticks) as f64 / ticks_per_s() / wall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_even_with_odd_names() {
        let stat =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_readable_and_busy_time_counts() {
        let a = sample(None).unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = sample(None).unwrap();
        let cores = cores_between(a, b);
        // Other processes may share the core: any busy time shows, and one thread never exceeds one core.
        assert!(x > 0 && cores > 0.02 && cores < 1.5, "{cores}");
    }
}
