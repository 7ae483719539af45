//! The broker's memory, read from `/proc/<pid>/status`: its largest resident set since it started (`VmHWM`) and its
//! resident set now (`VmRSS`). The scripts start a fresh broker per workload, so the peak is that workload's,
//! warm-up and fill included. A cache that grows without bound shows here long before the machine runs out.

use crate::result::ServerMemory;

/// The memory of process `pid` on this machine; `None` when it cannot be read (gone, or not local).
pub fn sample(pid: u32) -> Option<ServerMemory> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse_status(status: &str) -> Option<ServerMemory> {
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let value = line[key.len()..].trim().strip_suffix("kB")?.trim();
        value.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some(ServerMemory {
        peak_rss_bytes: kib("VmHWM:")?,
        rss_bytes: kib("VmRSS:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_and_the_current_resident_set() {
        let status = "Name:\tpinlog\nVmPeak:\t 9000 kB\nVmHWM:\t 7025340 kB\nVmRSS:\t  705712 kB\nThreads:\t5\n";
        assert_eq!(
            parse_status(status),
            Some(ServerMemory {
                peak_rss_bytes: 7_025_340 * 1024,
                rss_bytes: 705_712 * 1024,
            })
        );
        assert_eq!(
            parse_status("Name:\tkthread\n"),
            None,
            "a kernel thread has no VmRSS"
        );
    }

    #[test]
    fn own_process_is_readable() {
        let m = sample(std::process::id()).expect("own status");
        assert!(m.rss_bytes > 0 && m.peak_rss_bytes >= m.rss_bytes, "{m:?}");
    }
}
