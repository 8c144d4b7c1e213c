//! A package's payload upload: the file streamed from disk as it is sent, with a progress bar
//! on a terminal, its SHA-256 computed on the way and compared with the one the server records.
//!
//! The server takes `PUT /packages/{id}/payload` with the raw zip archive as the body (any
//! content type; not the 64 MiB body limit of other requests but its `--max-payload-size`,
//! 16 GiB by default). Two refusals are checked here before any byte is sent, since a server
//! that refuses a body it is still receiving may close the connection before the client reads
//! why: an unknown package (a `GET` first) and a file that does not start as a zip archive.
//! A size over the server's limit is refused by the server from the `Content-Length`, before
//! the body, thanks to `Expect: 100-continue`.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{Client, Error};
use crate::Failure;

/// Uploads `path` as the payload of package `id`; the package as the server answers it.
pub(crate) fn upload(client: &Client, id: i64, path: &Path) -> Result<Value, Failure> {
    let unreadable = |source: std::io::Error| Error::File {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(Failure::NotAFile {
            path: path.to_owned(),
        });
    }
    let length = metadata.len();
    let mut head = [0u8; 4];
    let read = read_up_to(&mut file, &mut head).map_err(unreadable)?;
    if !is_zip_head(&head[..read]) {
        return Err(Failure::NotAZip {
            path: path.to_owned(),
        });
    }
    file.rewind().map_err(unreadable)?;
    // An unknown package is a clean 404 before the body is sent.
    client.get(&format!("/packages/{id}"), &[])?;

    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        // The template is a constant known to be valid; the plain bar would do as well.
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("uploading {}", path.display()));
    let mut reader = Hashing {
        inner: bar.wrap_read(file),
        digest: Sha256::new(),
        read: 0,
    };
    let answer = client.put_stream(
        &format!("/packages/{id}/payload"),
        &mut reader,
        length,
        "application/zip",
    );
    bar.finish_and_clear();
    let package = answer?;
    let sent = hex(&reader.digest.finalize());
    if reader.read != length {
        return Err(Failure::FileChanged {
            path: path.to_owned(),
            announced: length,
            read: reader.read,
        });
    }
    let recorded = package.pointer("/payload/sha256").and_then(Value::as_str);
    if recorded != Some(sent.as_str()) {
        return Err(Failure::DigestMismatch {
            package: id,
            path: path.to_owned(),
            recorded: recorded.unwrap_or("(none)").to_owned(),
            local: sent,
        });
    }
    Ok(package)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    digest: Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the end; how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Whether a file starts as the server requires: a local file header, or the end record of an
/// empty archive.
fn is_zip_head(head: &[u8]) -> bool {
    head == b"PK\x03\x04" || head == b"PK\x05\x06"
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_of_every_byte_read() {
        let data = vec![7u8; 100_000];
        let mut reader = Hashing {
            inner: data.as_slice(),
            digest: Sha256::new(),
            read: 0,
        };
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        assert_eq!(reader.read, 100_000);
        assert_eq!(hex(&reader.digest.finalize()), hex(&Sha256::digest(&data)));
    }

    #[test]
    fn only_zip_heads_pass() {
        assert!(is_zip_head(b"PK\x03\x04"));
        assert!(is_zip_head(b"PK\x05\x06"));
        assert!(!is_zip_head(b"PK\x03"));
        assert!(!is_zip_head(b"%PDF"));
    }
}
