//! Package payload files: streamed to disk as they are uploaded, checked to be zip archives,
//! written so that a crash never leaves a package row saying it has a payload without the file,
//! and stale partial uploads removed at start.
//!
//! An upload goes to a temporary file in the payload directory ([`PayloadWriter`], on a
//! blocking thread, hashing it as it goes), is checked to be a zip archive by its central
//! directory ([`check_zip`]), synced, renamed over the final name, and the directory is synced,
//! all *before* the package row is updated: whatever the moment of a crash, a row with a payload
//! has its file. A crash can leave the opposite, a file whose row does not say so yet; it is
//! never served (downloads check the row), and the next upload replaces it. Temporary files left
//! by a crash are removed by [`remove_partials`] when the server starts (those no upload wrote
//! to lately: another process sharing the directory may be writing one).
//!
//! A file replaced by an upload is kept (a hard link) until the row is written, so that a failed
//! row write can put it back ([`Replaced::undo`]).

mod zip;

pub use zip::{check_zip, NotZip, ZipSummary};

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use oco_core::model::Sha256Digest;
use sha2::{Digest, Sha256};

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
    /// Bytes written so far.
    written: u64,
    fault: Option<WriteFault>,
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
            written: 0,
            fault: None,
        })
    }

    /// The same payload, its writes failing as `fault` says.
    pub fn with_fault(mut self, fault: Option<WriteFault>) -> Self {
        self.fault = fault;
        self
    }

    /// The temporary file (to read it back before the commit).
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// Appends `chunk`.
    ///
    /// # Errors
    ///
    /// The write's.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Err(io::Error::other("the payload was committed already"));
        };
        let len = chunk.len() as u64;
        if let Some(fault) = &self.fault {
            if self.written + len > fault.after {
                // As a disk would: what fits is written, then the error.
                let fits = usize::try_from(fault.after.saturating_sub(self.written))
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                file.write_all(&chunk[..fits])?;
                self.written += fits as u64;
                return Err(io::Error::from(fault.kind));
            }
        }
        file.write_all(chunk)?;
        self.written += len;
        Ok(())
    }

    /// Syncs the file, renames it over its final name and syncs the directory, so that the
    /// payload is durably in place when this returns. The file it replaces, if any, is kept
    /// until [`Replaced::keep`] or put back by [`Replaced::undo`].
    ///
    /// # Errors
    ///
    /// The sync's or the rename's; the temporary file is removed then, and the final name is
    /// left as it was.
    pub fn commit(mut self) -> io::Result<Replaced> {
        let Some(file) = self.file.take() else {
            return Err(io::Error::other("the payload was committed already"));
        };
        file.sync_all()?;
        drop(file);
        let previous = self.previous_name();
        let previous = match std::fs::hard_link(&self.target, &previous) {
            Ok(()) => Some(previous),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => {
                // A file system without hard links: the upload goes on without a way back.
                tracing::warn!(
                    "keeping {} until the package row is written: {error}",
                    self.target.display()
                );
                None
            }
        };
        let replaced = Replaced {
            target: self.target.clone(),
            previous,
            done: false,
        };
        if let Err(error) = std::fs::rename(&self.partial, &self.target) {
            replaced.keep();
            return Err(error);
        }
        // Renamed: nothing is left to remove, even if the directory sync fails.
        self.partial = PathBuf::new();
        if let Err(error) = sync_dir(parent(&self.target)) {
            replaced.undo();
            return Err(error);
        }
        Ok(replaced)
    }

    /// The name of the link to the file being replaced: a temporary file too, removed at start
    /// if a crash leaves it.
    fn previous_name(&self) -> PathBuf {
        let mut name = self.partial.as_os_str().to_owned();
        name.push(".previous");
        name.push(PARTIAL_SUFFIX);
        PathBuf::from(name)
    }
}

/// A payload just put in place by [`PartialPayload::commit`], with the file it replaced kept
/// aside until the package row is written. Dropped without a decision, it keeps the new file.
#[derive(Debug)]
#[must_use = "keep the new payload, or undo it if the package row was not written"]
pub struct Replaced {
    target: PathBuf,
    previous: Option<PathBuf>,
    done: bool,
}

impl Replaced {
    /// Keeps the new payload and forgets the one it replaced.
    pub fn keep(mut self) {
        self.forget_previous();
    }

    /// Puts back the payload that was replaced, or removes the new one if there was none.
    /// Failures are logged: the new file then stays.
    pub fn undo(mut self) {
        self.done = true;
        let result = match &self.previous {
            Some(previous) => std::fs::rename(previous, &self.target),
            None => std::fs::remove_file(&self.target),
        }
        .and_then(|()| sync_dir(parent(&self.target)));
        match result {
            Ok(()) => self.previous = None,
            Err(error) => tracing::error!(
                "putting back the payload {} as it was: {error}",
                self.target.display()
            ),
        }
        self.forget_previous();
    }

    fn forget_previous(&mut self) {
        self.done = true;
        if let Some(previous) = self.previous.take() {
            if let Err(error) = std::fs::remove_file(&previous) {
                tracing::warn!("removing {}: {error}", previous.display());
            }
        }
    }
}

impl Drop for Replaced {
    fn drop(&mut self) {
        if !self.done {
            self.forget_previous();
        }
    }
}

/// Makes payload writes fail after `after` bytes with an error of `kind`, as a full disk
/// (`StorageFull`) or a failing one would: a seam for tests of the error paths, set through
/// [`crate::ServerOptions::payload_write_fault`]. No option of the server sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFault {
    /// How many bytes of a payload are written before the error.
    pub after: u64,
    /// The error's kind.
    pub kind: io::ErrorKind,
}

/// Serialises the commits of uploads with the package row writes that follow them: two
/// uploads of one package could otherwise leave the file of one and the digest of the other.
/// Held for a rename and a row write, never across a body being read.
pub fn commit_lock() -> MutexGuard<'static, ()> {
    static COMMITS: Mutex<()> = Mutex::new(());
    // The guarded data is `()`: a panic while holding it left nothing inconsistent.
    COMMITS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An upload being streamed to a [`PartialPayload`]: [`PayloadWriter::write`] hands chunks to
/// a blocking thread that appends them and hashes them, at most [`PayloadWriter::QUEUE`] chunks
/// behind; [`PayloadWriter::finish`] waits for it. Dropped (or [`PayloadWriter::abort`]ed), the
/// temporary file is removed once the thread has stopped.
#[derive(Debug)]
pub struct PayloadWriter {
    chunks: Option<tokio::sync::mpsc::Sender<Bytes>>,
    thread: tokio::task::JoinHandle<io::Result<Written>>,
}

/// A payload written whole to its temporary file: its length and digest, not yet in place.
#[derive(Debug)]
pub struct Written {
    /// The file, to be checked and committed.
    pub partial: PartialPayload,
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 digest of its bytes.
    pub sha256: Sha256Digest,
}

impl PayloadWriter {
    /// How many chunks may wait for the disk: with hyper's reads of at most a few hundred KiB,
    /// an upload holds at most a few MiB however fast the client sends.
    pub const QUEUE: usize = 8;

    /// Starts writing the payload whose final name is `target` (see [`PartialPayload::create`]),
    /// its writes failing as `fault` says.
    pub fn start(target: PathBuf, fault: Option<WriteFault>) -> PayloadWriter {
        let (chunks, mut received) = tokio::sync::mpsc::channel::<Bytes>(Self::QUEUE);
        let thread = tokio::task::spawn_blocking(move || {
            let mut partial = PartialPayload::create(&target)?.with_fault(fault);
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = received.blocking_recv() {
                partial.write(&chunk)?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
            }
            Ok(Written {
                partial,
                size,
                sha256: Sha256Digest(hasher.finalize().into()),
            })
        });
        PayloadWriter {
            chunks: Some(chunks),
            thread,
        }
    }

    /// Queues `chunk`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// When the writing thread has stopped on an error; [`PayloadWriter::finish`] returns it.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), Stopped> {
        let Some(chunks) = &self.chunks else {
            return Err(Stopped);
        };
        chunks.send(chunk).await.map_err(|_| Stopped)
    }

    /// Waits until every chunk is written: the payload, or the first error.
    ///
    /// # Errors
    ///
    /// Creating or writing the temporary file (its kind is `StorageFull` for a full disk).
    pub async fn finish(mut self) -> io::Result<Written> {
        self.chunks = None;
        match (&mut self.thread).await {
            Ok(result) => result,
            Err(error) => Err(io::Error::other(error)),
        }
    }

    /// Stops writing and waits until the temporary file is removed.
    pub async fn abort(self) {
        // `Written` dropped: its `PartialPayload` removes the file.
        drop(self.finish().await);
    }
}

/// The writing thread of a [`PayloadWriter`] stopped on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

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

/// Removes from `dir` the temporary files of uploads a crash interrupted: those not written to
/// since `idle_for` before `now`; their paths. A missing directory has none.
///
/// An upload in progress writes its file at least once per body timeout (a slower client is
/// cut off, and its file removed), so with `idle_for` above the body timeout an upload in
/// progress in this or another process sharing the directory keeps its file.
///
/// # Errors
///
/// Reading the directory or removing a file.
pub fn remove_partials(
    dir: &Path,
    now: SystemTime,
    idle_for: Duration,
) -> io::Result<Vec<PathBuf>> {
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
        if !(name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX)) {
            continue;
        }
        let metadata = entry.metadata()?;
        // A file written in the future (a clock set back) counts as written now.
        let idle = now.duration_since(metadata.modified()?).unwrap_or_default();
        if metadata.is_file() && idle >= idle_for {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed.push(entry.path()),
                // Another process removed it first.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
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
        partial.commit().unwrap().keep();
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
