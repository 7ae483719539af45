//! The one error type of configuration, planning and host checks.
//!
//! Every variant displays as exactly ONE line that names the offending key and its value, because it is
//! printed once at start-up (`pinlog: invalid config: ...`) and an operator must be able to act on it
//! without reading anything else.

use std::path::PathBuf;

/// Why the configuration cannot be used. `Display` is a single line naming the key and the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A key has a value that is well-typed but unusable (bad address, missing core, too small, ...).
    #[error("invalid config: {key} = {value}: {reason}")]
    Invalid {
        key: &'static str,
        /// The value as written in TOML syntax (strings quoted).
        value: String,
        reason: String,
    },
    /// An entry of the config file failed to parse (unknown key, wrong type, bad TOML syntax).
    #[error("invalid config: {entry} ({} line {line}): {reason}", path.display())]
    FileEntry {
        path: PathBuf,
        line: usize,
        entry: String,
        reason: String,
    },
    /// The config file as a whole could not be read or parsed.
    #[error("invalid config: {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`]; `value` is already in TOML syntax.
    pub(crate) fn invalid(
        key: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key,
            value: value.to_string(),
            reason: one_line(reason.into()),
        }
    }
}

/// Collapses any line breaks (toml and io messages may carry some) so the error stays one line.
pub(crate) fn one_line(text: String) -> String {
    if text.contains('\n') {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        text
    }
}
