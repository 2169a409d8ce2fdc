//! Image-folder data sets: one subfolder per class (`DIR/<class>/*.png|jpg|jpeg|webp`), classes
//! in sorted name order (label = position), files in sorted name order within a class.
//!
//! Every image is decoded with `crate::preprocess::decode` (format from content), optionally
//! resized to a fixed size (triangle filter), and converted to one colour mode for the whole set:
//! grayscale with Pillow's `L` weights (`(19595·R + 38470·G + 7471·B + 2^15) >> 16`, exact for
//! grey pixels), or RGB. Hidden entries (`.name`), files at the top level and files without an
//! image extension are ignored. Empty sets, empty class folders, more than 256 classes and, without
//! a resize, images of different sizes are errors that name the folder or files.

use super::Dataset;
use crate::error::{Error, Result};
use crate::preprocess::decode;
use image::imageops::FilterType;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The colour mode of a loaded folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// Grayscale when every pixel of every image is grey (R = G = B), RGB otherwise.
    #[default]
    Auto,
    /// One channel (Pillow `L` conversion).
    Gray,
    /// Three channels.
    Rgb,
}

/// How to load an image folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FolderOptions {
    /// Resize every image to `(height, width)`; `None` requires all images to share one size.
    pub size: Option<(usize, usize)>,
    pub color: ColorMode,
}

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir.display(), format!("cannot read folder: {e}")))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry =
            entry.map_err(|e| Error::file(dir.display(), format!("cannot read folder: {e}")))?;
        let path = entry.path();
        if !is_hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The class folders of `dir` (sorted) and the image files of each (sorted).
pub fn list_classes(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    if !dir.is_dir() {
        return Err(Error::file(dir.display(), "not a folder"));
    }
    let mut classes = Vec::new();
    for sub in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = sub
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::file(sub.display(), "class folder name is not UTF-8"))?
            .to_string();
        let files: Vec<PathBuf> = sorted_entries(&sub)?
            .into_iter()
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
            })
            .collect();
        if files.is_empty() {
            return Err(Error::file(
                sub.display(),
                "class folder has no images (.png, .jpg, .jpeg, .webp)",
            ));
        }
        classes.push((name, files));
    }
    if classes.is_empty() {
        return Err(Error::file(
            dir.display(),
            "no class subfolders: an image folder needs one subfolder of images per class",
        ));
    }
    if classes.len() > 256 {
        return Err(Error::file(
            dir.display(),
            format!("{} class folders; at most 256 are supported", classes.len()),
        ));
    }
    Ok(classes)
}

/// Pillow's `L` conversion of one RGB pixel.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * u32::from(r) + 38470 * u32::from(g) + 7471 * u32::from(b) + 0x8000) >> 16) as u8
}

/// Load an image folder (one subfolder per class) as a `Dataset`.
pub fn load_folder(dir: impl AsRef<Path>, opts: &FolderOptions) -> Result<Dataset> {
    let dir = dir.as_ref();
    if let Some((h, w)) = opts.size {
        if h == 0 || w == 0 || h > super::idx::MAX_SIDE || w > super::idx::MAX_SIDE {
            return Err(Error::range(
                "load_folder",
                format!(
                    "resize target {h}x{w} is outside 1..={}",
                    super::idx::MAX_SIDE
                ),
            ));
        }
    }
    let classes = list_classes(dir)?;
    let mut images: Vec<RgbImage> = Vec::new();
    let mut labels = Vec::new();
    let mut first: Option<(PathBuf, u32, u32)> = None;
    for (label, (_, files)) in classes.iter().enumerate() {
        for file in files {
            let mut img = decode(file)?;
            if let Some((h, w)) = opts.size {
                if (img.height() as usize, img.width() as usize) != (h, w) {
                    img = image::imageops::resize(&img, w as u32, h as u32, FilterType::Triangle);
                }
            } else if let Some((p, w, h)) = &first {
                if (img.width(), img.height()) != (*w, *h) {
                    return Err(Error::file(
                        dir.display(),
                        format!(
                            "mixed image sizes: {} is {}x{} but {} is {w}x{h} (give a resize size)",
                            file.display(),
                            img.width(),
                            img.height(),
                            p.display()
                        ),
                    ));
                }
            } else {
                first = Some((file.clone(), img.width(), img.height()));
            }
            images.push(img);
            labels.push(label as u8);
        }
    }
    let (w, h) = images
        .first()
        .map(|i| (i.width() as usize, i.height() as usize))
        .ok_or_else(|| Error::file(dir.display(), "no images"))?;
    let gray = match opts.color {
        ColorMode::Gray => true,
        ColorMode::Rgb => false,
        ColorMode::Auto => images
            .iter()
            .all(|i| i.pixels().all(|p| p[0] == p[1] && p[1] == p[2])),
    };
    let c = if gray { 1 } else { 3 };
    let mut data = Vec::with_capacity(images.len() * h * w * c);
    for img in &images {
        if gray {
            data.extend(img.pixels().map(|p| luma(p[0], p[1], p[2])));
        } else {
            data.extend_from_slice(img.as_raw());
        }
    }
    Ok(Dataset {
        images: data,
        labels,
        h,
        w,
        c,
        classes: classes.len(),
        class_names: classes.into_iter().map(|(n, _)| n).collect(),
    })
}
