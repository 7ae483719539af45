//! Small files replaced atomically: hard state and state machine snapshot.
//!
//! A file is written whole to `<name>.tmp`, fdatasync'ed, renamed over `<name>` and the directory fsync'ed, so a
//! crash leaves either the old or the new content, never a mix. Each such file is an 8-byte magic then one frame.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::RaftShardError;
use crate::frame::{self, Decoded};

pub(crate) const MAGIC_BYTES: usize = 8;

pub(crate) fn replace(
    dir: &Path,
    name: &str,
    magic: &[u8; MAGIC_BYTES],
    payload: &[u8],
) -> Result<(), RaftShardError> {
    let mut bytes = Vec::with_capacity(MAGIC_BYTES + frame::FRAME_HEADER_BYTES + payload.len());
    bytes.extend_from_slice(magic);
    frame::encode(payload, &mut bytes);
    write_and_rename(dir, name, &bytes)
}

/// Writes `<name>.tmp`, syncs it and renames it over `<name>`, then syncs the directory entry.
pub(crate) fn write_and_rename(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RaftShardError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file = File::create(&tmp).map_err(RaftShardError::io("create", &tmp))?;
    file.write_all(bytes)
        .map_err(RaftShardError::io("write", &tmp))?;
    file.sync_data()
        .map_err(RaftShardError::io("fdatasync", &tmp))?;
    fs::rename(&tmp, &target).map_err(RaftShardError::io("rename", &target))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), RaftShardError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(RaftShardError::io("fsync directory", dir))
}

/// The payload of `<dir>/<name>`, `None` if the file does not exist.
pub(crate) fn read(
    dir: &Path,
    name: &str,
    magic: &[u8; MAGIC_BYTES],
) -> Result<Option<Vec<u8>>, RaftShardError> {
    let path: PathBuf = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(RaftShardError::io("read", path)(err)),
    };
    if bytes.get(..MAGIC_BYTES) != Some(magic.as_slice()) {
        return Err(RaftShardError::corrupt(path, "wrong magic"));
    }
    match frame::decode(&bytes, MAGIC_BYTES) {
        Decoded::Frame { payload, next } if next == bytes.len() => Ok(Some(payload.to_vec())),
        Decoded::Frame { .. } => Err(RaftShardError::corrupt(
            path,
            "trailing bytes after the frame",
        )),
        Decoded::Torn => Err(RaftShardError::corrupt(path, "truncated frame")),
        Decoded::Corrupt { .. } => Err(RaftShardError::corrupt(path, "checksum mismatch")),
    }
}
