//! IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw: reading with every header
//! field checked, and writing (for subsets and test fixtures).
//!
//! Layout: big-endian u32 magic `0x0000_08DD` (type byte 0x08 = u8, DD = number of dimensions),
//! one big-endian u32 per dimension, then the u8 data, row-major. Images are `0x0000_0803`
//! (count, rows, cols); labels are `0x0000_0801` (count). A file is gzip when it starts with
//! `1f 8b` (all gzip members are read), raw otherwise. The reader streams: it never allocates
//! more than the data actually present, so a corrupt header cannot trigger a huge allocation.

use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{BufReader, Read, Write};
use std::path::Path;

/// Magic number of an IDX image file (u8 data, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file (u8 data, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest accepted image side.
pub const MAX_SIDE: usize = 4096;

/// The images of an IDX image file: `count` images of `rows`×`cols` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
}

fn open(path: &Path) -> Result<Box<dyn Read>> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| Error::file(&shown, format!("cannot open: {e}")))?;
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let n = reader
            .read(&mut head[got..])
            .map_err(|e| Error::file(&shown, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let start = std::io::Cursor::new(head[..got].to_vec());
    let chained = start.chain(reader);
    if got == 2 && head == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(BufReader::new(chained))))
    } else {
        Ok(Box::new(chained))
    }
}

fn read_err(path: &Path, e: std::io::Error) -> Error {
    Error::file(
        path.display(),
        format!("cannot read (corrupt or truncated gzip?): {e}"),
    )
}

/// Read the magic and `ndim` dimensions; check the magic.
fn read_header(path: &Path, r: &mut dyn Read, magic: u32, what: &str) -> Result<Vec<usize>> {
    let ndim = (magic & 0xff) as usize;
    let mut head = vec![0u8; 4 + 4 * ndim];
    let got = read_up_to(r, &mut head).map_err(|e| read_err(path, e))?;
    if got < 4 {
        return Err(Error::file(
            path.display(),
            format!("truncated: {got} bytes, too short for an IDX header"),
        ));
    }
    let found = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if found != magic {
        return Err(Error::file(
            path.display(),
            format!("not an IDX {what} file: magic number 0x{found:08x}, expected 0x{magic:08x}"),
        ));
    }
    if got < head.len() {
        return Err(Error::file(
            path.display(),
            format!("truncated IDX header: {got} of {} bytes", head.len()),
        ));
    }
    Ok(head[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect())
}

/// Read until `buf` is full or the data ends; the number of bytes read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read exactly `expected` data bytes and check that nothing follows.
fn read_body(path: &Path, r: &mut dyn Read, expected: usize, what: &str) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(expected.min(64 << 20));
    r.take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err(path, e))?;
    if data.len() < expected {
        return Err(Error::file(
            path.display(),
            format!(
                "truncated: the header promises {what} ({expected} data bytes), the data ends after {} bytes",
                data.len()
            ),
        ));
    }
    if data.len() > expected {
        return Err(Error::file(
            path.display(),
            format!("longer than its header says: more than the {expected} data bytes of {what}"),
        ));
    }
    Ok(data)
}

/// Read an IDX image file (gzip or raw): magic 0x803, count, rows, cols, then the pixels.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let mut r = open(path)?;
    let dims = read_header(path, &mut *r, IMAGES_MAGIC, "image")?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 || rows > MAX_SIDE || cols > MAX_SIDE {
        return Err(Error::file(
            path.display(),
            format!("image size {rows}x{cols} in the header is outside 1..={MAX_SIDE}"),
        ));
    }
    let expected = count
        .checked_mul(rows * cols)
        .ok_or_else(|| Error::file(path.display(), format!("header count {count} is too large")))?;
    let what = format!("{count} images of {rows}x{cols}");
    let data = read_body(path, &mut *r, expected, &what)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        data,
    })
}

/// Read an IDX label file (gzip or raw): magic 0x801, count, then one byte per label.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let mut r = open(path)?;
    let dims = read_header(path, &mut *r, LABELS_MAGIC, "label")?;
    let count = dims[0];
    read_body(path, &mut *r, count, &format!("{count} labels"))
}

/// Encode an IDX file (`magic`, big-endian `dims`, `data`), gzip-compressed when `gzip`.
pub fn encode(magic: u32, dims: &[u32], data: &[u8], gzip: bool) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    raw.extend_from_slice(&magic.to_be_bytes());
    for d in dims {
        raw.extend_from_slice(&d.to_be_bytes());
    }
    raw.extend_from_slice(data);
    if !gzip {
        return Ok(raw);
    }
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(&raw)?;
    Ok(enc.finish()?)
}

/// Write bytes to `path` through a temporary file and a rename (no partial files).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::file(&shown, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(&shown, format!("cannot rename: {e}")))
}
