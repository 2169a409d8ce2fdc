//! Training and test data: Fashion-MNIST (and any IDX data set), image folders, seeded batching
//! and augmentation.
//!
//! - [`Dataset`]: u8 images, NHWC, with u8 labels; loaded by [`load_idx`] (IDX gzip pairs with
//!   every header field checked), [`load_folder`] (one subfolder per class), [`load_dir`] (either,
//!   for a `--data DIR` option) or [`fashion_mnist`].
//! - [`Loader`]: shuffled, augmented mini-batches (bytes and the F8Net input k/256), resumable
//!   from a [`LoaderState`]; [`augment`] and [`rng`] are its parts.
//!
//! Where `fashion_mnist` reads from, first match wins: the folder in `$F8NET_FASHION_MNIST` (if
//! set, it must hold the files: no silent fallback); the Debian package `dataset-fashion-mnist`
//! (`/usr/share/datasets/fashion-mnist/`, the full 60k/10k); the committed 600/200 subset
//! (`assets/data/fashion-mnist-subset/`). So the full set wins whenever it is installed; a test
//! that needs the subset loads `SUBSET_DIR` explicitly.

pub mod augment;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod rng;

pub use augment::Augment;
pub use folder::{load_folder, ColorMode, FolderOptions};
pub use loader::{Batch, Loader, LoaderConfig, LoaderState};
pub use rng::SplitMix64;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A labelled image set: `images` is N×H×W×C u8 (NHWC), `labels[i] < classes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub classes: usize,
    /// One name per class (folder names; Fashion-MNIST's names; "0", "1", … for plain IDX).
    pub class_names: Vec<String>,
}

/// Which half of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// IDX file names (gzip) of the images and labels, as Fashion-MNIST and MNIST name them.
    pub fn idx_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            Split::Test => ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        }
    }
    /// Subfolder name in an image-folder layout.
    pub fn folder_name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Number of classes assumed for IDX data.
pub const DEFAULT_CLASSES: usize = 10;
/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Where the Debian package `dataset-fashion-mnist` installs the full set.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The committed subset (600 train / 200 test, 60 / 20 per class).
pub const SUBSET_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/data/fashion-mnist-subset"
);
/// Environment variable naming a Fashion-MNIST folder that overrides the defaults.
pub const ENV_VAR: &str = "F8NET_FASHION_MNIST";

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per image, `h·w·c`.
    pub fn image_size(&self) -> usize {
        self.h * self.w * self.c
    }
    /// Image `i`, HWC.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.images[i * s..(i + 1) * s]
    }
    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }
    /// Check that the fields fit together (sizes, label range, class names).
    pub fn validate(&self) -> Result<()> {
        let s = self.image_size();
        if s == 0 || self.images.len() != self.len() * s {
            return Err(Error::shape(
                "Dataset",
                format!(
                    "{} image bytes for {} labels of {}x{}x{}",
                    self.images.len(),
                    self.len(),
                    self.h,
                    self.w,
                    self.c
                ),
            ));
        }
        if self.classes == 0 || self.classes > 256 || self.class_names.len() != self.classes {
            return Err(Error::range(
                "Dataset",
                format!(
                    "{} classes with {} names (1..=256 classes, one name each)",
                    self.classes,
                    self.class_names.len()
                ),
            ));
        }
        if let Some((i, l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= self.classes)
        {
            return Err(Error::range(
                "Dataset",
                format!(
                    "label {l} at index {i} is out of range for {} classes",
                    self.classes
                ),
            ));
        }
        Ok(())
    }
    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let s = self.image_size();
        let mut images = Vec::with_capacity(indices.len() * s);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.len() {
                return Err(Error::range(
                    "Dataset::subset",
                    format!("index {i} of a data set of {}", self.len()),
                ));
            }
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Ok(Dataset {
            images,
            labels,
            ..self.clone_meta()
        })
    }
    fn clone_meta(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            h: self.h,
            w: self.w,
            c: self.c,
            classes: self.classes,
            class_names: self.class_names.clone(),
        }
    }
    /// Write as a gzip IDX pair in `dir` under `split`'s file names (one-channel sets only).
    pub fn write_idx(&self, dir: impl AsRef<Path>, split: Split) -> Result<()> {
        let dir = dir.as_ref();
        self.validate()?;
        let big = |v: usize| u32::try_from(v).map_err(|_| Error::range("write_idx", "too large"));
        if self.c != 1 {
            return Err(Error::shape(
                "write_idx",
                format!("IDX images have one channel, this set has {}", self.c),
            ));
        }
        let (img_name, lbl_name) = split.idx_names();
        let dims = [big(self.len())?, big(self.h)?, big(self.w)?];
        let img = idx::encode(idx::IMAGES_MAGIC, &dims, &self.images, true)?;
        let lbl = idx::encode(idx::LABELS_MAGIC, &dims[..1], &self.labels, true)?;
        idx::write_atomic(&dir.join(img_name), &img)?;
        idx::write_atomic(&dir.join(lbl_name), &lbl)
    }
}

/// The image and label files of `split` in `dir`: each `NAME.gz`, or the uncompressed `NAME`
/// when only that exists (the `.gz` path when neither does, so errors name it).
pub fn idx_paths(dir: &Path, split: Split) -> (PathBuf, PathBuf) {
    let pick = |gz: &str| {
        let p = dir.join(gz);
        match gz.strip_suffix(".gz").map(|raw| dir.join(raw)) {
            Some(raw) if !p.is_file() && raw.is_file() => raw,
            _ => p,
        }
    };
    let (a, b) = split.idx_names();
    (pick(a), pick(b))
}

/// Load the IDX image/label pair of `split` from `dir` (gzip or raw, see [`idx_paths`]) with
/// `DEFAULT_CLASSES` classes.
pub fn load_idx(dir: impl AsRef<Path>, split: Split) -> Result<Dataset> {
    let (images, labels) = idx_paths(dir.as_ref(), split);
    load_idx_files(images, labels, DEFAULT_CLASSES)
}

/// Load an IDX image file and label file; every label must be below `classes`.
pub fn load_idx_files(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    classes: usize,
) -> Result<Dataset> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    if classes == 0 || classes > 256 {
        return Err(Error::range(
            "load_idx",
            format!("{classes} classes; u8 labels allow 1..=256"),
        ));
    }
    let img = idx::read_images(images)?;
    let lbl = idx::read_labels(labels)?;
    if lbl.len() != img.count {
        return Err(Error::file(
            labels.display(),
            format!(
                "count mismatch: {} labels but {} has {} images",
                lbl.len(),
                images.display(),
                img.count
            ),
        ));
    }
    if let Some((i, l)) = lbl
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= classes)
    {
        return Err(Error::file(
            labels.display(),
            format!(
                "label {l} at index {i} is out of range for {classes} classes (0..={})",
                classes - 1
            ),
        ));
    }
    Ok(Dataset {
        images: img.data,
        labels: lbl,
        h: img.rows,
        w: img.cols,
        c: 1,
        classes,
        class_names: (0..classes).map(|i| i.to_string()).collect(),
    })
}

/// Whether `dir` holds the IDX pair of `split`.
pub fn has_idx(dir: &Path, split: Split) -> bool {
    let (a, b) = idx_paths(dir, split);
    a.is_file() && b.is_file()
}

/// A `--data DIR` folder: the IDX pair of `split` if `dir` holds it, else the image folder
/// `dir/train` or `dir/test`. Errors say what was looked for.
pub fn load_dir(dir: impl AsRef<Path>, split: Split, opts: &FolderOptions) -> Result<Dataset> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(Error::file(
            dir.display(),
            "data folder does not exist or is not a folder",
        ));
    }
    if has_idx(dir, split) {
        return load_idx(dir, split);
    }
    let sub = dir.join(split.folder_name());
    if sub.is_dir() {
        return load_folder(&sub, opts);
    }
    let (a, b) = split.idx_names();
    Err(Error::file(
        dir.display(),
        format!(
            "no {} data: expected {a} and {b} (IDX) or a subfolder {}/ with one folder per class",
            split.folder_name(),
            split.folder_name()
        ),
    ))
}

/// Where [`fashion_mnist`] reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `$F8NET_FASHION_MNIST`.
    Env,
    /// The Debian package (full set).
    Debian,
    /// The committed subset.
    Subset,
}

/// The folder `fashion_mnist(split)` reads, and why (see the module docs for the order).
pub fn fashion_mnist_dir(split: Split) -> Result<(PathBuf, Source)> {
    let env = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty());
    resolve_fashion_mnist(env.as_deref().map(Path::new), Path::new(DEBIAN_DIR), split)
}

/// The resolution rule of [`fashion_mnist_dir`] with its inputs explicit: `override_dir` (the
/// environment variable; it must hold the files), then `debian_dir`, then [`SUBSET_DIR`].
pub fn resolve_fashion_mnist(
    override_dir: Option<&Path>,
    debian_dir: &Path,
    split: Split,
) -> Result<(PathBuf, Source)> {
    if let Some(dir) = override_dir {
        if !has_idx(dir, split) {
            let (a, b) = split.idx_names();
            return Err(Error::file(
                dir.display(),
                format!("${ENV_VAR} names this folder, but it lacks {a} or {b}"),
            ));
        }
        return Ok((dir.to_path_buf(), Source::Env));
    }
    for (dir, src) in [
        (debian_dir, Source::Debian),
        (Path::new(SUBSET_DIR), Source::Subset),
    ] {
        if has_idx(dir, split) {
            return Ok((dir.to_path_buf(), src));
        }
    }
    Err(Error::file(
        debian_dir.display(),
        format!(
            "Fashion-MNIST not found (apt-get install dataset-fashion-mnist, or set ${ENV_VAR}); \
             the committed subset {SUBSET_DIR} is missing too"
        ),
    ))
}

/// Fashion-MNIST `split` from the first folder of [`fashion_mnist_dir`], with its class names.
pub fn fashion_mnist(split: Split) -> Result<Dataset> {
    let (dir, _) = fashion_mnist_dir(split)?;
    let mut d = load_idx(&dir, split)?;
    d.class_names = FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    Ok(d)
}
