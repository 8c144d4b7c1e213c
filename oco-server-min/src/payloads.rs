//! Package payload files: written so that a crash never leaves a package row saying it has a
//! payload without the file, and stale partial uploads removed at start.
//!
//! An upload goes to a temporary file in the payload directory ([`PartialPayload`]), is synced,
//! renamed over the final name, and the directory is synced, all *before* the package row is
//! updated: whatever the moment of a crash, a row with `has_payload` has its file. A crash can
//! leave the opposite, a file whose row does not say so yet; it is never served (downloads check
//! the row), and the next upload replaces it. Temporary files left by a crash are removed by
//! [`remove_partials`] when the server starts.
//!
//! The writer takes the payload in chunks, so that an upload can be streamed to disk.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The suffix of temporary upload files; they also start with a dot.
const PARTIAL_SUFFIX: &str = ".partial";

/// Distinguishes the temporary files of concurrent uploads in one process.
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// A payload being written to a temporary file beside its final name. Dropped without
/// [`PartialPayload::commit`], its file is removed.
#[derive(Debug)]
pub struct PartialPayload {
    file: Option<File>,
    partial: PathBuf,
    target: PathBuf,
}

impl PartialPayload {
    /// Starts writing the payload whose final name is `target`, creating its directory if needed.
    ///
    /// # Errors
    ///
    /// Creating the directory or the temporary file.
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = parent(target);
        std::fs::create_dir_all(dir)?;
        let name = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dir.join(format!(
            ".{name}.{}.{}{PARTIAL_SUFFIX}",
            std::process::id(),
            UPLOADS.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            // Payloads are the administrator's installers: nobody else's to read or replace.
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&partial)?;
        Ok(PartialPayload {
            file: Some(file),
            partial,
            target: target.to_path_buf(),
        })
    }

    /// Appends `chunk`.
    ///
    /// # Errors
    ///
    /// The write's.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.write_all(chunk),
            None => Err(io::Error::other("the payload was committed already")),
        }
    }

    /// Syncs the file, renames it to its final name and syncs the directory, so that the
    /// payload is durably in place when this returns.
    ///
    /// # Errors
    ///
    /// The sync's or the rename's; the temporary file is removed then.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Err(io::Error::other("the payload was committed already"));
        };
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.partial, &self.target)?;
        // Renamed: nothing is left to remove, even if the directory sync fails.
        self.partial = PathBuf::new();
        sync_dir(parent(&self.target))
    }
}

impl Drop for PartialPayload {
    fn drop(&mut self) {
        if self.partial.as_os_str().is_empty() {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.partial) {
            tracing::warn!("removing {}: {error}", self.partial.display());
        }
    }
}

/// Removes the temporary files of uploads a crash interrupted from `dir`; their paths. A
/// missing directory has none. Call it before serving: an upload in progress in this or another
/// process would lose its file.
///
/// # Errors
///
/// Reading the directory or removing a file.
pub fn remove_partials(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    removed.sort();
    Ok(removed)
}

/// The directory a payload file is in.
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename in `dir` durable (on Unix; elsewhere a directory cannot be opened to sync it,
/// and the rename is as durable as the platform makes it).
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// A payload file opened to be sent: its length and a body that reads it from disk in chunks of
/// 64 KiB as the client takes them, so a multi-GB installer sent to many agents at once holds
/// a few chunks each, not the file.
///
/// # Errors
///
/// Opening the file or reading its length (`NotFound` when there is no file).
pub async fn open_stream(path: &Path) -> io::Result<(u64, axum::body::Body)> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let chunks = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    Ok((length, axum::body::Body::from_stream(chunks)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_committed_payload_is_in_place_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("payloads").join("7.zip");
        let mut partial = PartialPayload::create(&target).unwrap();
        partial.write(b"PK\x03\x04").unwrap();
        partial.write(b"rest").unwrap();
        assert!(!target.exists(), "not in place before the commit");
        partial.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"PK\x03\x04rest");

        let mut dropped = PartialPayload::create(&target).unwrap();
        dropped.write(b"other").unwrap();
        drop(dropped);
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["7.zip"]);
        assert_eq!(std::fs::read(&target).unwrap(), b"PK\x03\x04rest");
    }
}
