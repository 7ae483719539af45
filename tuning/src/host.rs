//! Probes of the host facilities pinlog depends on, for `pinlog tune`.
//!
//! glommio needs io_uring (a kernel may lack it or disable it by sysctl/seccomp) and registers its IO
//! buffers within RLIMIT_MEMLOCK; both fail late and obscurely inside glommio, so they are probed here
//! directly with the syscalls involved.

/// Bytes of `struct io_uring_params` (stable kernel ABI); the kernel fills it in.
const IO_URING_PARAMS_BYTES: usize = 120;

/// Whether an io_uring instance can be created: `Ok(())`, or the OS error that prevents it.
pub fn io_uring_available() -> Result<(), std::io::Error> {
    let mut params = [0u32; IO_URING_PARAMS_BYTES / 4];
    // SAFETY: io_uring_setup(entries, params) reads and writes exactly one io_uring_params (120 bytes),
    // which `params` provides, zeroed as the ABI requires.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a file descriptor we just created and own; it is closed exactly once.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// RLIMIT_MEMLOCK as (soft, hard) in bytes; `None` means unlimited.
pub fn memlock_limit() -> Result<(Option<u64>, Option<u64>), std::io::Error> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the exclusively borrowed `limit`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let finite = |value: libc::rlim_t| (value != libc::RLIM_INFINITY).then_some(value);
    Ok((finite(limit.rlim_cur), finite(limit.rlim_max)))
}

/// The host's memory in bytes (`MemTotal` of /proc/meminfo).
pub fn mem_total_bytes() -> Result<u64, std::io::Error> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    parse_mem_total(&meminfo).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no MemTotal line in /proc/meminfo",
        )
    })
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib = line["MemTotal:".len()..].trim().strip_suffix("kB")?.trim();
    kib.parse::<u64>().ok().map(|k| k * 1024)
}

/// io_uring rings per shard that glommio registers the shard's I/O arena with (main, poll, latency); each
/// registration counts the arena against RLIMIT_MEMLOCK.
pub const IO_ARENA_RINGS_PER_SHARD: u64 = 3;

/// Bit of CAP_IPC_LOCK in the capability sets (linux/capability.h).
const CAP_IPC_LOCK_BIT: u32 = 14;

/// Whether io_uring may register `bytes` of buffers for this process: it holds CAP_IPC_LOCK (root normally does),
/// which lifts the limit, or RLIMIT_MEMLOCK's soft limit has room.
pub fn memlock_fits(bytes: u64) -> Result<bool, std::io::Error> {
    let (soft, _) = memlock_limit()?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let can_lock = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK_BIT) != 0);
    Ok(can_lock || soft.is_none_or(|limit| bytes <= limit))
}

/// The running kernel's release string, e.g. `6.8.0-45-generic`.
pub fn kernel_release() -> Result<String, std::io::Error> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|text| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_memory_is_read_from_meminfo() {
        let meminfo = "MemTotal:       24568132 kB\nMemFree:        23000000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_568_132 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert!(mem_total_bytes().unwrap() > 0, "this host's /proc/meminfo");
    }

    #[test]
    fn nothing_always_fits_the_memlock_limit() {
        assert!(memlock_fits(0).unwrap());
    }

    #[test]
    fn memlock_is_readable() {
        let (soft, hard) = memlock_limit().unwrap();
        if let (Some(soft), Some(hard)) = (soft, hard) {
            assert!(soft <= hard);
        }
    }

    #[test]
    fn kernel_release_looks_like_a_version() {
        let release = kernel_release().unwrap();
        assert!(
            release.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{release}"
        );
    }

    #[test]
    fn io_uring_probe_returns() {
        // The brief says io_uring works on these machines; elsewhere only the error kind matters.
        if let Err(err) = io_uring_available() {
            assert!(err.raw_os_error().is_some(), "{err}");
        }
    }
}
