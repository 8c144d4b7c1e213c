//! Checks that a file is a zip archive by its end records and central directory, in constant
//! memory.
//!
//! The agent unpacks a payload with Python's `zipfile`, which finds the archive's entries
//! through the end of central directory record (and its zip64 form) and the central directory.
//! [`check_zip`] reads the same structures the same way: the last 64 KiB + 22 bytes for the end
//! record, then the central directory once, in order, through one 64 KiB buffer, keeping no
//! entry. Its memory is therefore constant (about 130 KiB) whatever the number of entries, and
//! its reading is bounded by the central directory's size, which is at most the file's: a hostile
//! directory of millions of entries costs one sequential read of that directory and nothing
//! more. Each entry's place in the file is checked against where the directory starts and where
//! the end record says it starts (the shift Python applies to every entry: bytes missing or
//! added before the directory make an entry start outside the archive), and the first entry's
//! local header is read where it is placed. The entries' data is not read (nor decompressed, nor
//! its CRC checked).

use std::fmt;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// The end of central directory record's signature, `PK\x05\x06`.
const END: u32 = 0x0605_4b50;
/// The zip64 end of central directory locator's signature, `PK\x06\x07`.
const LOCATOR64: u32 = 0x0706_4b50;
/// The zip64 end of central directory record's signature, `PK\x06\x06`.
const END64: u32 = 0x0606_4b50;
/// A local file header's signature, `PK\x03\x04`.
const LOCAL: u32 = 0x0403_4b50;
/// A local file header's length without its name and extra field.
const LOCAL_LEN: u64 = 30;
/// A central directory file header's signature, `PK\x01\x02`.
const CENTRAL: u32 = 0x0201_4b50;
/// The end record's length without its comment.
const END_LEN: u64 = 22;
/// The zip64 locator's length.
const LOCATOR64_LEN: u64 = 20;
/// The zip64 end record's length without its extensible data.
const END64_LEN: u64 = 56;
/// A central directory file header's length without its name, extra field and comment.
const CENTRAL_LEN: u64 = CENTRAL_HEADER as u64;
/// The same, as a buffer length.
const CENTRAL_HEADER: usize = 46;
/// The longest end record comment.
const MAX_COMMENT: u64 = 0xFFFF;
/// The buffer through which the central directory is read.
const BUFFER: usize = 64 * 1024;

/// What the central directory of an archive that passed [`check_zip`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipSummary {
    /// How many entries (files and directories) the archive holds.
    pub entries: u64,
    /// Whether the archive uses the zip64 end records.
    pub zip64: bool,
}

/// Why a file is not a zip archive that the agent can unpack. Its `Display` starts with
/// `not a zip archive: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotZip {
    /// No end of central directory record at the end of the file (a truncated archive, or
    /// another kind of file).
    NoEndRecord,
    /// The archive is split over several files.
    Spanned,
    /// The end record says the archive is zip64, but the zip64 end record is not where the
    /// locator is.
    NoZip64EndRecord,
    /// The central directory, as the end record places it, does not fit before the end record.
    DirectoryOutOfBounds {
        /// Its length, as the end record says.
        size: u64,
        /// Where the end records start.
        end: u64,
    },
    /// An entry of the central directory has no header signature where it should be.
    BadEntry {
        /// The entry's index, from 0.
        index: u64,
        /// Its byte offset in the file.
        offset: u64,
    },
    /// An entry of the central directory runs past the directory's end.
    EntryPastEnd {
        /// The entry's index, from 0.
        index: u64,
    },
    /// An entry's local header would lie outside the data before the central directory, as the
    /// directory places it (bytes missing from, or added to, the archive).
    EntryOutOfBounds {
        /// The entry's index, from 0.
        index: u64,
        /// The offset of its local header, as its directory entry says.
        offset: u64,
    },
    /// The first entry's local header is not where the central directory places it.
    BadLocalHeader {
        /// Where it should be, in the file.
        at: u64,
    },
    /// The central directory's length is not that of the entries the end record counts.
    CountMismatch {
        /// The entries the end record counts.
        entries: u64,
        /// The directory's length, as the end record says.
        size: u64,
        /// The bytes those entries take.
        used: u64,
    },
}

impl fmt::Display for NotZip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a zip archive: ")?;
        match self {
            NotZip::NoEndRecord => f.write_str(
                "no end of central directory record (is the archive truncated, or not a zip?)",
            ),
            NotZip::Spanned => f.write_str("the archive is split over several files"),
            NotZip::NoZip64EndRecord => {
                f.write_str("the zip64 end of central directory record is missing")
            }
            NotZip::DirectoryOutOfBounds { size, end } => write!(
                f,
                "the central directory ({size} bytes) does not fit before its end record at \
                 byte {end}"
            ),
            NotZip::BadEntry { index, offset } => write!(
                f,
                "entry {index} of the central directory has no header signature (at byte \
                 {offset})"
            ),
            NotZip::EntryPastEnd { index } => write!(
                f,
                "entry {index} of the central directory runs past the directory's end"
            ),
            NotZip::EntryOutOfBounds { index, offset } => write!(
                f,
                "entry {index} of the central directory places its data outside the archive \
                 (at offset {offset}; are bytes missing or added before the directory?)"
            ),
            NotZip::BadLocalHeader { at } => write!(
                f,
                "the first entry's local header is not at byte {at}, where the central \
                 directory places it"
            ),
            NotZip::CountMismatch {
                entries,
                size,
                used,
            } => write!(
                f,
                "the central directory is {size} bytes long, but its {entries} entries take \
                 {used}"
            ),
        }
    }
}

impl std::error::Error for NotZip {}

/// Checks that `file` (read from its start to its end) is a zip archive: its end record (zip64
/// included) and every entry of its central directory, as described in the module
/// documentation.
///
/// # Errors
///
/// `Ok(Err(_))` says why the file is not a zip archive; `Err(_)` is a read error.
pub fn check_zip<R: Read + Seek>(file: R) -> io::Result<Result<ZipSummary, NotZip>> {
    let mut file = file;
    let len = file.seek(SeekFrom::End(0))?;
    let Some((end_at, end)) = find_end(&mut file, len)? else {
        return Ok(Err(NotZip::NoEndRecord));
    };
    if end.disk != 0 || end.directory_disk != 0 {
        return Ok(Err(NotZip::Spanned));
    }
    let mut directory = Directory {
        entries: u64::from(end.entries),
        size: u64::from(end.size),
        offset: u64::from(end.offset),
        end: end_at,
        zip64: false,
    };
    // As zipfile does, the zip64 records are looked for whatever the end record says: Python
    // writes them, with the end record's fields exact, once the directory starts past 2 GiB.
    if end_at >= LOCATOR64_LEN {
        let locator = read_at(&mut file, end_at - LOCATOR64_LEN, LOCATOR64_LEN)?;
        if le32(&locator, 0) == LOCATOR64 {
            // As zipfile does, the zip64 record is taken to sit just before its locator, not
            // where the locator's offset says (data may have been prepended to the archive).
            let Some(at) = (end_at - LOCATOR64_LEN).checked_sub(END64_LEN) else {
                return Ok(Err(NotZip::NoZip64EndRecord));
            };
            let record = read_at(&mut file, at, END64_LEN)?;
            if le32(&record, 0) != END64 {
                return Ok(Err(NotZip::NoZip64EndRecord));
            }
            if le32(&record, 16) != 0 || le32(&record, 20) != 0 {
                return Ok(Err(NotZip::Spanned));
            }
            directory = Directory {
                entries: le64(&record, 32),
                size: le64(&record, 40),
                offset: le64(&record, 48),
                end: at,
                zip64: true,
            };
        }
    }
    Ok(match walk(&mut file, &directory)? {
        Ok(()) => Ok(ZipSummary {
            entries: directory.entries,
            zip64: directory.zip64,
        }),
        Err(reason) => Err(reason),
    })
}

/// The fields of an end of central directory record.
struct EndRecord {
    disk: u16,
    directory_disk: u16,
    entries: u16,
    size: u32,
    offset: u32,
}

/// Where the central directory ends and what it should hold.
struct Directory {
    entries: u64,
    size: u64,
    /// Where the end record says it starts (before any data prepended to the archive).
    offset: u64,
    /// The offset of the first end record after it.
    end: u64,
    zip64: bool,
}

/// The last end record whose comment ends exactly at the end of the file, and its offset.
fn find_end<R: Read + Seek>(file: &mut R, len: u64) -> io::Result<Option<(u64, EndRecord)>> {
    if len < END_LEN {
        return Ok(None);
    }
    let start = len.saturating_sub(END_LEN + MAX_COMMENT);
    let tail = read_at(file, start, len - start)?;
    let tail_len = tail.len();
    let mut at = tail_len - 22;
    loop {
        if le32(&tail, at) == END {
            let comment = usize::from(le16(&tail, at + 20));
            if at + 22 + comment == tail_len {
                let record = EndRecord {
                    disk: le16(&tail, at + 4),
                    directory_disk: le16(&tail, at + 6),
                    entries: le16(&tail, at + 10),
                    size: le32(&tail, at + 12),
                    offset: le32(&tail, at + 16),
                };
                return Ok(Some((start + at as u64, record)));
            }
        }
        if at == 0 {
            return Ok(None);
        }
        at -= 1;
    }
}

/// Reads every entry header of `directory`, which must end exactly where its end record starts.
fn walk<R: Read + Seek>(file: &mut R, directory: &Directory) -> io::Result<Result<(), NotZip>> {
    let Some(start) = directory.end.checked_sub(directory.size) else {
        return Ok(Err(NotZip::DirectoryOutOfBounds {
            size: directory.size,
            end: directory.end,
        }));
    };
    // What zipfile adds to every entry's offset: the size of data prepended to the archive, or
    // less than 0 when bytes are missing.
    let shift = i128::from(start) - i128::from(directory.offset);
    let mut first_local = None;
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::with_capacity(BUFFER, &mut *file);
    let mut header = [0u8; CENTRAL_HEADER];
    let mut extra = Vec::new();
    let mut used = 0u64;
    for index in 0..directory.entries {
        if used + CENTRAL_LEN > directory.size {
            return Ok(Err(NotZip::EntryPastEnd { index }));
        }
        reader.read_exact(&mut header)?;
        if le32(&header, 0) != CENTRAL {
            return Ok(Err(NotZip::BadEntry {
                index,
                offset: start + used,
            }));
        }
        let (name, extra_len, comment) = (le16(&header, 28), le16(&header, 30), le16(&header, 32));
        used += CENTRAL_LEN + u64::from(name) + u64::from(extra_len) + u64::from(comment);
        if used > directory.size {
            return Ok(Err(NotZip::EntryPastEnd { index }));
        }
        // At most 3 × 64 KiB: relative seeks within the buffer, or reads of the file.
        reader.seek_relative(i64::from(name))?;
        extra.resize(usize::from(extra_len), 0);
        reader.read_exact(&mut extra)?;
        reader.seek_relative(i64::from(comment))?;
        let Some(offset) = local_offset(&header, &extra) else {
            return Ok(Err(NotZip::EntryOutOfBounds {
                index,
                offset: u64::from(u32::MAX),
            }));
        };
        let at = i128::from(offset) + shift;
        if at < 0 || at + i128::from(LOCAL_LEN) > i128::from(start) {
            return Ok(Err(NotZip::EntryOutOfBounds { index, offset }));
        }
        if index == 0 {
            first_local = u64::try_from(at).ok();
        }
    }
    drop(reader);
    if used != directory.size {
        return Ok(Err(NotZip::CountMismatch {
            entries: directory.entries,
            size: directory.size,
            used,
        }));
    }
    if let Some(at) = first_local {
        if le32(&read_at(file, at, 4)?, 0) != LOCAL {
            return Ok(Err(NotZip::BadLocalHeader { at }));
        }
    }
    Ok(Ok(()))
}

/// An entry's local header offset: from its central directory header, or from its zip64 extra
/// field when the header holds `0xFFFFFFFF` (after the sizes that are `0xFFFFFFFF` too, as
/// zipfile reads it). `None` when the zip64 field lacks it.
fn local_offset(header: &[u8], extra: &[u8]) -> Option<u64> {
    const UNKNOWN: u32 = u32::MAX;
    let offset = le32(header, 42);
    if offset != UNKNOWN {
        return Some(u64::from(offset));
    }
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (tag, len) = (le16(extra, at), usize::from(le16(extra, at + 2)));
        let data = extra.get(at + 4..at + 4 + len)?;
        if tag == 1 {
            let skip = [24, 20]
                .iter()
                .filter(|&&field| le32(header, field) == UNKNOWN)
                .count()
                * 8;
            return (data.len() >= skip + 8).then(|| le64(data, skip));
        }
        at += 4 + len;
    }
    None
}

/// `len` bytes at `offset` (`len` is at most 64 KiB + 22 here).
fn read_at<R: Read + Seek>(file: &mut R, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;

    /// A stored (uncompressed) archive of `entries`, with the zip64 end records if `zip64`.
    pub(crate) fn archive(entries: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, content) in entries {
            let offset = out.len() as u32;
            let size = content.len() as u32;
            out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
            out.extend_from_slice(&0u32.to_le_bytes()); // CRC: not checked
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(content);
            central
                .extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
            central.extend_from_slice(&0u32.to_le_bytes());
            central.extend_from_slice(&size.to_le_bytes());
            central.extend_from_slice(&size.to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let directory_at = out.len() as u64;
        out.extend_from_slice(&central);
        let count = entries.len() as u64;
        if zip64 {
            let record_at = out.len() as u64;
            out.extend_from_slice(b"PK\x06\x06");
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&(central.len() as u64).to_le_bytes());
            out.extend_from_slice(&directory_at.to_le_bytes());
            out.extend_from_slice(b"PK\x06\x07\x00\x00\x00\x00");
            out.extend_from_slice(&record_at.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff");
            out.extend_from_slice(&[0xff; 8]);
        } else {
            out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
            out.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend_from_slice(&(central.len() as u32).to_le_bytes());
            out.extend_from_slice(&(directory_at as u32).to_le_bytes());
        }
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn check(bytes: &[u8]) -> Result<ZipSummary, NotZip> {
        check_zip(Cursor::new(bytes)).unwrap()
    }

    #[test]
    fn archives_pass_with_their_entry_count() {
        let entries: &[(&str, &[u8])] = &[("setup.exe", b"MZ..."), ("dir/", b""), ("a.txt", b"a")];
        for zip64 in [false, true] {
            assert_eq!(
                check(&archive(entries, zip64)),
                Ok(ZipSummary { entries: 3, zip64 }),
            );
            assert_eq!(
                check(&archive(&[], zip64)),
                Ok(ZipSummary { entries: 0, zip64 })
            );
        }
        // A comment after the end record, and data prepended to the archive (as zipfile takes).
        let mut commented = archive(entries, false);
        let at = commented.len() - 2;
        commented[at..].copy_from_slice(&5u16.to_le_bytes());
        commented.extend_from_slice(b"hello");
        assert_eq!(check(&commented).unwrap().entries, 3);
        // Zip64 records with exact end record fields, as Python writes past 2 GiB.
        let mut exact = archive(entries, true);
        let end = exact.len() - 22;
        let directory = archive(entries, false);
        let plain_end = directory.len() - 22;
        exact[end + 8..end + 20].copy_from_slice(&directory[plain_end + 8..plain_end + 20]);
        assert_eq!(
            check(&exact),
            Ok(ZipSummary {
                entries: 3,
                zip64: true
            })
        );
        let mut prefixed = b"#!/bin/sh\n".to_vec();
        prefixed.extend(archive(entries, true));
        assert_eq!(check(&prefixed).unwrap().entries, 3);
    }

    #[test]
    fn each_mistake_is_named() {
        let entries: &[(&str, &[u8])] = &[("a.txt", b"a"), ("b.txt", b"bb")];
        let good = archive(entries, false);
        let message = |bytes: &[u8]| check(bytes).unwrap_err().to_string();
        let no_end = "not a zip archive: no end of central directory record (is the archive \
                      truncated, or not a zip?)";
        assert_eq!(message(b""), no_end);
        assert_eq!(message(b"PK\x03\x04 and then garbage"), no_end);
        assert_eq!(message(&good[..good.len() - 1]), no_end);
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(message(&trailing), no_end);

        let end = good.len() - 22;
        let mut spanned = good.clone();
        spanned[end + 4] = 1;
        assert_eq!(
            message(&spanned),
            "not a zip archive: the archive is split over several files"
        );
        let mut oversized = good.clone();
        oversized[end + 12..end + 16]
            .copy_from_slice(&u32::try_from(end + 1).unwrap().to_le_bytes());
        assert_eq!(
            message(&oversized),
            format!(
                "not a zip archive: the central directory ({} bytes) does not fit before its \
                 end record at byte {end}",
                end + 1
            )
        );
        let directory = usize::try_from(u32::from_le_bytes(
            good[end + 16..end + 20].try_into().unwrap(),
        ))
        .unwrap();
        let mut unsigned = good.clone();
        unsigned[directory] = b'X';
        assert_eq!(
            message(&unsigned),
            format!(
                "not a zip archive: entry 0 of the central directory has no header signature (at \
                 byte {directory})"
            )
        );
        let mut fewer = good.clone();
        fewer[end + 10] = 1;
        assert_eq!(
            message(&fewer),
            "not a zip archive: the central directory is 102 bytes long, but its 1 entries take 51"
        );
        // A hostile count: the walk stops at the directory's end, whatever the count says.
        let mut more = good.clone();
        more[end + 10] = 0xfe;
        assert_eq!(
            message(&more),
            "not a zip archive: entry 2 of the central directory runs past the directory's end"
        );
        // Bytes cut from, or added to, the middle: the directory is intact, the data is not
        // where it places it.
        let mut cut = good.clone();
        cut.drain(3..9);
        assert_eq!(
            message(&cut),
            "not a zip archive: entry 0 of the central directory places its data outside the \
             archive (at offset 0; are bytes missing or added before the directory?)"
        );
        let mut added = good.clone();
        added.splice(40..40, *b"xyz");
        assert_eq!(
            message(&added),
            "not a zip archive: the first entry's local header is not at byte 3, where the \
             central directory places it"
        );
        let mut moved = good.clone();
        let second = directory + 46 + 5 + 42;
        moved[second..second + 4].copy_from_slice(&u32::try_from(directory).unwrap().to_le_bytes());
        assert_eq!(
            message(&moved),
            format!(
                "not a zip archive: entry 1 of the central directory places its data outside \
                 the archive (at offset {directory}; are bytes missing or added before the \
                 directory?)"
            )
        );
        let zip64 = archive(entries, true);
        let record = zip64.len() - 22 - 20 - 56;
        let mut no_record = zip64.clone();
        no_record[record] = b'X';
        assert_eq!(
            message(&no_record),
            "not a zip archive: the zip64 end of central directory record is missing"
        );
        let mut many = zip64.clone();
        many[record + 32..record + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            message(&many),
            "not a zip archive: entry 2 of the central directory runs past the directory's end"
        );
    }

    #[test]
    fn a_zip64_offset_is_read_from_the_extra_field() {
        // One entry whose directory header defers its offset to a zip64 extra field.
        let bytes = archive(&[("a.txt", b"a")], false);
        let end = bytes.len() - 22;
        let directory = usize::try_from(u32::from_le_bytes(
            bytes[end + 16..end + 20].try_into().unwrap(),
        ))
        .unwrap();
        let with_extra = |offset: u64| {
            let mut out = bytes[..directory].to_vec();
            let mut header = bytes[directory..directory + 46 + 5].to_vec();
            header[30..32].copy_from_slice(&12u16.to_le_bytes());
            header[42..46].copy_from_slice(&u32::MAX.to_le_bytes());
            header.extend_from_slice(&1u16.to_le_bytes());
            header.extend_from_slice(&8u16.to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(&bytes[end..]);
            let end = out.len() - 22;
            out[end + 12..end + 16]
                .copy_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
            out
        };
        assert_eq!(check(&with_extra(0)).unwrap().entries, 1);
        assert_eq!(
            check(&with_extra(1 << 40)),
            Err(NotZip::EntryOutOfBounds {
                index: 0,
                offset: 1 << 40
            })
        );
    }

    proptest! {
        /// Cutting any bytes out of an archive before its central directory is refused: its
        /// entries no longer start where the directory places them.
        #[test]
        fn bytes_cut_before_the_directory_are_found(
            contents in proptest::collection::vec("[a-z]{0,40}", 1..5),
            zip64 in any::<bool>(),
            from in any::<prop::sample::Index>(),
            len in 1usize..20,
        ) {
            let names: Vec<String> = (0..contents.len()).map(|i| format!("f{i}.txt")).collect();
            let entries: Vec<(&str, &[u8])> = names
                .iter()
                .zip(&contents)
                .map(|(name, content)| (name.as_str(), content.as_bytes()))
                .collect();
            let mut bytes = archive(&entries, zip64);
            let directory = entries
                .iter()
                .map(|(name, content)| 30 + name.len() + content.len())
                .sum::<usize>();
            let from = from.index(directory);
            let to = (from + len).min(directory);
            bytes.drain(from..to);
            prop_assert!(check(&bytes).is_err());
        }


        /// Every archive passes, and no proper prefix of it does (an upload cut off anywhere is
        /// refused). Contents are letters, so no prefix ends in an end record by chance.
        #[test]
        fn archives_pass_and_their_prefixes_do_not(
            contents in proptest::collection::vec("[a-z]{0,40}", 0..5),
            zip64 in any::<bool>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let names: Vec<String> = (0..contents.len()).map(|i| format!("f{i}.txt")).collect();
            let entries: Vec<(&str, &[u8])> = names
                .iter()
                .zip(&contents)
                .map(|(name, content)| (name.as_str(), content.as_bytes()))
                .collect();
            let bytes = archive(&entries, zip64);
            prop_assert_eq!(
                check(&bytes),
                Ok(ZipSummary { entries: entries.len() as u64, zip64 })
            );
            let cut = cut.index(bytes.len());
            prop_assert_eq!(check(&bytes[..cut]), Err(NotZip::NoEndRecord));
        }
    }
}
