//! File helpers every layer uses: atomic writes, and locating a TOML key's
//! line and column for error messages.

pub mod locate;

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// Writes a file so that readers see the old content or the new, never half:
/// a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".loadtest-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(content)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}
