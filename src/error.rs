//! The library's error type. Every variant names the operation and, where it helps, the shapes,
//! so a caller can print one clear line (`f8net: <error>`) and exit non-zero.

use thiserror::Error;

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Error)]
pub enum Error {
    /// No usable GPU adapter: callers fall back to the CPU reference.
    #[error("no GPU adapter found ({0}); use the CPU reference backend (--cpu)")]
    NoAdapter(String),
    /// The device could not be created or a wgpu call failed.
    #[error("GPU error in {op}: {msg}")]
    Gpu { op: &'static str, msg: String },
    /// Tensor shapes that do not fit together.
    #[error("{op}: shape mismatch: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A fixed-point format, shift or parameter outside its allowed range.
    #[error("{op}: {msg}")]
    Range { op: &'static str, msg: String },
    /// A buffer larger than the device allows for one binding.
    #[error(
        "{op}: buffer of {bytes} bytes exceeds the device binding limit of {limit} bytes ({msg})"
    )]
    TooLarge {
        op: &'static str,
        bytes: u64,
        limit: u64,
        msg: String,
    },
    /// A model, checkpoint, image or dataset file that cannot be used.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn range(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Range {
            op,
            msg: msg.into(),
        }
    }
    pub fn gpu(op: &'static str, msg: impl std::fmt::Display) -> Self {
        Error::Gpu {
            op,
            msg: msg.to_string(),
        }
    }
    pub fn file(path: impl std::fmt::Display, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.to_string(),
            msg: msg.into(),
        }
    }
}
