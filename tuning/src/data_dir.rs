//! Start-up check of the data directory: it exists, is writable, and really supports O_DIRECT.
//!
//! The engine writes segments through glommio DmaFile (O_DIRECT, io_uring). On tmpfs glommio silently
//! drops O_DIRECT, and some filesystems accept the open flag but fail the first aligned write — either way
//! the engine's durability and performance assumptions break far from the cause. So before anything
//! starts we (1) refuse tmpfs by its statfs magic and (2) do one real O_DIRECT write of an aligned block,
//! fdatasync it, and remove the file. The timing of that write is reported: it shows what a durable
//! flush costs on this disk.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::ConfigError;

/// Size and alignment of the probe write: the largest logical block size O_DIRECT may require.
pub const DIRECT_PROBE_BYTES: usize = 4096;

/// statfs `f_type` of tmpfs (linux/magic.h), which has no real O_DIRECT.
const TMPFS_MAGIC: u64 = 0x0102_1994;
/// statfs `f_type` of ramfs, also memory-only.
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Names of common filesystems by statfs magic (linux/magic.h), for reports and errors.
const FS_NAMES: &[(u64, &str)] = &[
    (0xEF53, "ext2/3/4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0xF2F5_2010, "f2fs"),
    (0x2FC1_2FC1, "zfs"),
    (TMPFS_MAGIC, "tmpfs"),
    (RAMFS_MAGIC, "ramfs"),
    (0x794C_7630, "overlayfs"),
    (0x6969, "nfs"),
    (0xFF53_4D42, "cifs"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x9FA0, "proc"),
    (0x6265_6572, "sysfs"),
];

/// What the check found; `Ok` means the directory is writable and O_DIRECT works there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirReport {
    pub path: PathBuf,
    /// Filesystem name from statfs (`"ext2/3/4"`, `"xfs"`, ..., or `"unknown (0x...)"`).
    pub fs_type: String,
    /// Time of one O_DIRECT 4 KiB write + fdatasync to a new file (the slow case: the file grows).
    pub direct_write_sync: Duration,
}

/// Creates `dir` if missing and checks it is writable and supports O_DIRECT (not tmpfs, and a real
/// aligned O_DIRECT write + fdatasync succeeds).
pub fn check_data_dir(dir: &Path) -> Result<DataDirReport, ConfigError> {
    let shown = format!("{:?}", dir.display().to_string());
    let fail = |reason: String| ConfigError::invalid("data_dir", &shown, reason);
    std::fs::create_dir_all(dir)
        .map_err(|err| fail(format!("cannot create the directory: {err}")))?;
    let magic = statfs_magic(dir).map_err(|err| fail(format!("statfs failed: {err}")))?;
    let fs_type = fs_name(magic);
    if magic == TMPFS_MAGIC || magic == RAMFS_MAGIC {
        return Err(fail(format!(
            "is on {fs_type}, which has no O_DIRECT; use a directory on a disk filesystem"
        )));
    }
    let direct_write_sync =
        probe_direct_write(dir).map_err(|err| fail(format!("{err} (filesystem {fs_type})")))?;
    Ok(DataDirReport {
        path: dir.to_owned(),
        fs_type,
        direct_write_sync,
    })
}

fn fs_name(magic: u64) -> String {
    FS_NAMES
        .iter()
        .find(|(known, _)| *known == magic)
        .map_or_else(
            || format!("unknown (0x{magic:x})"),
            |(_, name)| (*name).to_string(),
        )
}

fn statfs_magic(dir: &Path) -> std::io::Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte")
    })?;
    // SAFETY: statfs is plain old data, so all-zero is a valid value for the kernel to overwrite.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a valid, exclusively borrowed statfs.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // f_type is signed on some targets; magics are 32-bit, so mask off any sign extension.
    Ok((stats.f_type as u64) & 0xFFFF_FFFF)
}

/// One O_DIRECT-aligned block; Box honours the alignment, so no unsafe allocation is needed.
#[repr(C, align(4096))]
struct AlignedBlock([u8; DIRECT_PROBE_BYTES]);

/// Writes one aligned block with O_DIRECT, fdatasyncs it, removes the file; returns the write+sync time.
fn probe_direct_write(dir: &Path) -> Result<Duration, String> {
    let path = dir.join(format!(".pinlog-direct-probe-{}", std::process::id()));
    let result = write_direct_block(&path);
    let removed = std::fs::remove_file(&path);
    let elapsed = result?;
    removed.map_err(|err| format!("cannot remove the probe file {}: {err}", path.display()))?;
    Ok(elapsed)
}

fn write_direct_block(path: &Path) -> Result<Duration, String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::EINVAL) => {
                "O_DIRECT is not supported here (open failed with EINVAL)".to_string()
            }
            _ => format!("not writable: cannot create a file in it: {err}"),
        })?;
    let block = Box::new(AlignedBlock([0xA5; DIRECT_PROBE_BYTES]));
    let started = Instant::now();
    file.write_all(&block.0).map_err(|err| {
        format!("an aligned O_DIRECT write of {DIRECT_PROBE_BYTES} bytes failed: {err}")
    })?;
    file.sync_data()
        .map_err(|err| format!("fdatasync failed: {err}"))?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::disk_tempdir;

    #[test]
    fn creates_a_missing_dir_and_probes_o_direct() {
        let tmp = disk_tempdir();
        let dir = tmp.path().join("a/b/data");
        let report = check_data_dir(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(report.path, dir);
        assert!(!report.fs_type.is_empty());
        assert!(report.direct_write_sync > Duration::ZERO);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the probe file is removed"
        );
    }

    #[test]
    fn tmpfs_is_refused() {
        let shm = Path::new("/dev/shm");
        if statfs_magic(shm).ok() != Some(TMPFS_MAGIC) {
            eprintln!("skipped: /dev/shm is not tmpfs on this host");
            return;
        }
        let tmp = tempfile::TempDir::new_in(shm).unwrap();
        let err = check_data_dir(tmp.path()).unwrap_err().to_string();
        assert!(err.starts_with("invalid config: data_dir = \""), "{err}");
        assert!(
            err.ends_with(
                "is on tmpfs, which has no O_DIRECT; use a directory on a disk filesystem"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_file_in_the_way_is_refused() {
        let tmp = disk_tempdir();
        let file = tmp.path().join("data");
        std::fs::write(&file, b"not a directory").unwrap();
        let err = check_data_dir(&file).unwrap_err().to_string();
        assert!(err.contains("cannot create the directory"), "{err}");
    }

    #[test]
    fn an_unwritable_dir_is_refused() {
        // /proc is writable by nobody, root included, and exists everywhere this runs.
        let err = check_data_dir(Path::new("/proc")).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid config: data_dir = \"/proc\": not writable"),
            "{err}"
        );
        assert!(err.contains("(filesystem proc)"), "{err}");
    }

    #[test]
    fn names_filesystems() {
        assert_eq!(fs_name(0xEF53), "ext2/3/4");
        assert_eq!(fs_name(0x1234), "unknown (0x1234)");
    }
}
