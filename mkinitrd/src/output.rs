//! Writing the image: all or nothing.
//!
//! The image is built in memory first, so a build that fails never touches
//! the output. The write itself goes to a temporary file beside the target,
//! is fsynced, and renamed over it ([`terra_layout::atomic::write_atomic`]):
//! a crash or error leaves either the previous image or the new one, never a
//! half file, and the temporary file is removed on error.

use std::path::Path;

use anyhow::{Context, Result};

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_image(path: &Path, bytes: &[u8]) -> Result<()> {
    terra_layout::atomic::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}
