//! Helpers shared by this crate's tests.

use std::path::Path;

/// A temporary directory on the workspace's disk: O_DIRECT does not work on tmpfs, so never the system temp dir.
pub fn disk_tempdir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::TempDir::new_in(base).unwrap()
}
