//! Image preprocessing for ImageNet models: decode (JPEG, PNG, WebP) with size limits, convert to
//! RGB8, resize the shorter side, centre-crop. Output: `RgbBytes`, uint8 RGB HWC row-major.
//!
//! `load_image` is the built-in model's pipeline and follows `tools/reference_forward.py`
//! (Pillow): shorter side to 256 with a triangle filter whose support widens with the
//! downscale factor (Pillow's antialiased BILINEAR), the longer side to
//! `(long·256 + short/2) / short`, then a 224×224 crop at `left = (w − 224)/2`,
//! `top = (h − 224)/2`. No EXIF orientation is applied (Pillow doesn't either); alpha is dropped.
//! The decoder (zune-jpeg) and resampler differ slightly from libjpeg/Pillow: on the golden
//! photos, mean |Δ| 0.3 and max |Δ| 3 levels per byte.
//!
//! Every failure on user input — missing file, not an image, truncated data, dimensions over
//! `MAX_SIDE` or decoder memory over `MAX_ALLOC` — is an `Error::File` naming the path.

use crate::error::{Error, Result};
use image::imageops::FilterType;
use image::{ImageError, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Side of the square network input.
pub const INPUT_SIZE: usize = 224;
/// Shorter side after resizing, before the centre crop.
pub const RESIZE_SHORTER: usize = 256;
/// Largest accepted image width or height.
pub const MAX_SIDE: u32 = 16384;
/// Largest decoder allocation, bytes.
pub const MAX_ALLOC: u64 = 512 << 20;
/// Largest intermediate (resized) image, pixels: bounds memory for extreme aspect ratios.
const MAX_RESIZED_PIXELS: u64 = 1 << 26;

/// An 8-bit RGB image, HWC row-major: `data[(y·width + x)·3 + channel]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbBytes {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl RgbBytes {
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }
    /// The HWC bytes (`height·width·3`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
    /// Mirror left-right (a test-time augmentation).
    pub fn flip_horizontal(&self) -> RgbBytes {
        let mut data = Vec::with_capacity(self.data.len());
        for row in self.data.chunks_exact(self.width * 3) {
            for px in row.chunks_exact(3).rev() {
                data.extend_from_slice(px);
            }
        }
        RgbBytes { data, ..*self }
    }
}

/// Wrap raw HWC bytes (e.g. a `.rgb` fixture) as a `width`×`height` image; the length must be
/// exactly `width·height·3`.
pub fn from_rgb_bytes(bytes: &[u8], width: usize, height: usize) -> Result<RgbBytes> {
    let expected = width.checked_mul(height).and_then(|p| p.checked_mul(3));
    if width == 0 || height == 0 || Some(bytes.len()) != expected {
        return Err(Error::shape(
            "from_rgb_bytes",
            format!("{} bytes for a {width}x{height} RGB image", bytes.len()),
        ));
    }
    Ok(RgbBytes {
        width,
        height,
        data: bytes.to_vec(),
    })
}

/// Read a raw HWC `.rgb` file of `width`×`height`.
pub fn load_rgb_raw(path: impl AsRef<Path>, width: usize, height: usize) -> Result<RgbBytes> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::file(path.display(), format!("cannot read: {e}")))?;
    from_rgb_bytes(&bytes, width, height).map_err(|e| Error::file(path.display(), e.to_string()))
}

/// The built-in model's input: decode, shorter side to 256, centre crop 224×224.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbBytes> {
    let path = path.as_ref();
    let img = decode(path)?;
    resize_center_crop(&img, RESIZE_SHORTER, INPUT_SIZE)
        .map_err(|e| Error::file(path.display(), e.to_string()))
}

/// Decode an image file (format from its content, never the extension) to RGB8, under
/// `MAX_SIDE` / `MAX_ALLOC`. Files larger than `MAX_ALLOC` bytes are refused unread.
pub fn decode(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let open_err = |e: std::io::Error| Error::file(&shown, format!("cannot open: {e}"));
    let len = std::fs::metadata(path).map_err(open_err)?.len();
    if len > MAX_ALLOC {
        return Err(Error::file(
            &shown,
            format!("file of {len} bytes is too large for an image"),
        ));
    }
    let bytes = std::fs::read(path).map_err(open_err)?;
    decode_bytes(&bytes, &shown)
}

/// Decode an in-memory image file; `name` is used in errors.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<RgbImage> {
    decode_inner(bytes).map_err(|msg| Error::file(name, msg))
}

fn decode_inner(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "not an image (expected JPEG, PNG or WebP)".to_string())?;
    // zune-jpeg (as the image crate configures it) fills a truncated scan with grey instead of
    // failing; Pillow refuses such files, and so do we.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err("truncated JPEG: the data ends before the end-of-image marker".into());
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        ImageError::Limits(e) => format!(
            "image too large (limits: {MAX_SIDE}x{MAX_SIDE} pixels, {} MiB): {e}",
            MAX_ALLOC >> 20
        ),
        ImageError::Unsupported(e) => format!("unsupported image: {e}"),
        e => format!("cannot decode image (corrupt or truncated?): {e}"),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(img.into_rgb8())
}

/// Walk a JPEG's marker segments and entropy-coded scans; true when an end-of-image marker
/// (FF D9) is reached before the data runs out. Inside a scan, FF is followed by 00 (a stuffed
/// byte), D0..D7 (restart), FF (fill) or the next marker.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        // Find the next FF (lenient about stray bytes between segments, like the decoder).
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (b.get(i), b.get(i + 1)) else {
            return false;
        };
        i += usize::from(u16::from_be_bytes([hi, lo]));
        if i > b.len() {
            return false;
        }
        if marker == 0xDA {
            // Entropy-coded data up to the next real marker.
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(0xFF), Some(&m))
                        if m != 0x00 && m != 0xFF && !(0xD0..=0xD7).contains(&m) =>
                    {
                        break
                    }
                    (Some(_), Some(_)) => i += 1,
                    _ => return false,
                }
            }
        }
    }
}

/// Resize so the shorter side is `short_side` (triangle filter, antialiased when shrinking; the
/// longer side rounds half up like Pillow), then crop `crop`×`crop` at the centre.
pub fn resize_center_crop(img: &RgbImage, short_side: usize, crop: usize) -> Result<RgbBytes> {
    let resized = resize_shorter(img, short_side)?;
    center_crop(&resized, crop)
}

/// Resize so the shorter side is `short_side`; the longer side becomes
/// `(long·short_side + short/2) / short`.
pub fn resize_shorter(img: &RgbImage, short_side: usize) -> Result<RgbImage> {
    let (w, h) = (img.width() as u128, img.height() as u128);
    let s = short_side as u128;
    if w == 0 || h == 0 || s == 0 {
        return Err(Error::shape(
            "resize",
            format!("{w}x{h} image to shorter side {s}"),
        ));
    }
    let scale = |long: u128, short: u128| (long * s + short / 2) / short;
    let (nw, nh) = if w <= h {
        (s, scale(h, w))
    } else {
        (scale(w, h), s)
    };
    if nw * nh > MAX_RESIZED_PIXELS as u128 {
        return Err(Error::shape(
            "resize",
            format!("{w}x{h} image resized to {nw}x{nh}: aspect ratio too extreme"),
        ));
    }
    if (nw, nh) == (w, h) {
        return Ok(img.clone());
    }
    Ok(image::imageops::resize(
        img,
        nw as u32,
        nh as u32,
        FilterType::Triangle,
    ))
}

/// The centred `crop`×`crop` region at `left = (w − crop)/2`, `top = (h − crop)/2`.
pub fn center_crop(img: &RgbImage, crop: usize) -> Result<RgbBytes> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if crop == 0 || w < crop || h < crop {
        return Err(Error::shape(
            "center_crop",
            format!("{crop}x{crop} crop of a {w}x{h} image"),
        ));
    }
    let (left, top) = ((w - crop) / 2, (h - crop) / 2);
    let raw = img.as_raw();
    let mut data = Vec::with_capacity(crop * crop * 3);
    for y in top..top + crop {
        let start = (y * w + left) * 3;
        data.extend_from_slice(&raw[start..start + crop * 3]);
    }
    Ok(RgbBytes {
        width: crop,
        height: crop,
        data,
    })
}
