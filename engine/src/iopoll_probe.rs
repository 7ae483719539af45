//! Work around glommio 0.9's io_uring poll-ring probe. On the first DmaFile a thread opens on
//! a device, glommio reads one block from it on the poll ring and caches "poll supported" when
//! the read succeeds. A read of an *empty* file succeeds without reaching the device, so if the
//! first file is a fresh segment, every later read on a device without IOPOLL support (virtio,
//! most cloud disks) fails with EOPNOTSUPP. We make sure the first DmaFile opened on each
//! device by this thread holds a real block, so the probe sees the device's true answer.

use glommio::io::DmaFile;
use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One block: the size glommio's probe reads.
const PROBE_FILE_BYTES: usize = 4096;

thread_local! {
    static PROBED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Run glommio's poll-ring probe for `dir`'s device against a non-empty file, once per thread.
pub async fn ensure_probed(dir: &Path) -> io::Result<()> {
    let dev = std::fs::metadata(dir)?.dev();
    if PROBED_DEVICES.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let path = dir.join(".iopoll-probe");
    std::fs::write(&path, [0u8; PROBE_FILE_BYTES])?;
    let file = DmaFile::open(&path).await?;
    file.close().await?;
    std::fs::remove_file(&path)?;
    PROBED_DEVICES.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}
