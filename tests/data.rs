//! Training data: the committed Fashion-MNIST subset and (when the Debian package is installed) the
//! full set; clear errors for every kind of corrupt input. Batching and augmentation:
//! `tests/data_batches.rs`.

use f8net::data::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use f8net::data::{
    fashion_mnist_dir, load_dir, load_folder, load_idx, resolve_fashion_mnist, ColorMode, Dataset,
    FolderOptions, Source, Split, SplitMix64, DEBIAN_DIR, ENV_VAR, FASHION_MNIST_CLASSES,
    SUBSET_DIR,
};
use std::path::{Path, PathBuf};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("f8net-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small synthetic one-channel set: `n` images of `h`×`w`, label `i % classes`.
pub(crate) fn synthetic(n: usize, h: usize, w: usize, classes: usize) -> Dataset {
    let mut rng = SplitMix64::new(7);
    Dataset {
        images: (0..n * h * w).map(|_| rng.next_u64() as u8).collect(),
        labels: (0..n).map(|i| (i % classes) as u8).collect(),
        h,
        w,
        c: 1,
        classes,
        class_names: (0..classes).map(|i| i.to_string()).collect(),
    }
}

fn write_gz(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    std::fs::write(path, idx::encode(magic, dims, data, true).unwrap()).unwrap();
}

/// Write an IDX pair for `split` in `dir` with explicit headers.
fn write_pair(dir: &Path, split: Split, img: (u32, &[u32], &[u8]), lbl: (u32, &[u32], &[u8])) {
    let (a, b) = split.idx_names();
    write_gz(&dir.join(a), img.0, img.1, img.2);
    write_gz(&dir.join(b), lbl.0, lbl.1, lbl.2);
}

pub(crate) fn err_of<T: std::fmt::Debug>(r: f8net::Result<T>) -> String {
    let e = r.expect_err("expected an error").to_string();
    eprintln!("  error (as expected): {e}");
    e
}

#[test]
fn committed_subset_loads_balanced() {
    for (split, n, per) in [(Split::Train, 600, 60), (Split::Test, 200, 20)] {
        let d = load_idx(SUBSET_DIR, split).unwrap();
        assert_eq!((d.len(), d.h, d.w, d.c, d.classes), (n, 28, 28, 1, 10));
        assert_eq!(d.images.len(), n * 784);
        assert_eq!(d.class_counts(), vec![per; 10], "{split:?}");
        d.validate().unwrap();
        // Real images, not blanks: most of them have a bright pixel.
        let bright = (0..d.len())
            .filter(|&i| d.image(i).iter().any(|&p| p > 200))
            .count();
        assert!(bright > n * 9 / 10, "{bright} of {n}");
    }
    // The train subset is the first 60 per class of the original file (class order of the file).
    let d = load_idx(SUBSET_DIR, Split::Train).unwrap();
    assert_eq!(&d.labels[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
}

#[test]
fn full_fashion_mnist_when_installed() {
    if !Path::new(DEBIAN_DIR)
        .join("train-images-idx3-ubyte.gz")
        .is_file()
    {
        eprintln!("skipped: {DEBIAN_DIR} absent (apt-get install dataset-fashion-mnist)");
        return;
    }
    let t = std::time::Instant::now();
    for (split, n, per) in [(Split::Train, 60000, 6000), (Split::Test, 10000, 1000)] {
        let d = load_idx(DEBIAN_DIR, split).unwrap();
        assert_eq!((d.len(), d.h, d.w, d.c), (n, 28, 28, 1));
        assert_eq!(d.class_counts(), vec![per; 10], "{split:?}");
        // The committed subset is drawn from it: its first image is the full set's first.
        let s = load_idx(SUBSET_DIR, split).unwrap();
        assert_eq!(s.image(0), d.image(0));
    }
    eprintln!("full Fashion-MNIST loaded in {:?}", t.elapsed());
    if std::env::var_os(ENV_VAR).is_none() {
        let (dir, src) = fashion_mnist_dir(Split::Train).unwrap();
        assert_eq!((dir, src), (PathBuf::from(DEBIAN_DIR), Source::Debian));
        let d = f8net::data::fashion_mnist(Split::Test).unwrap();
        assert_eq!(d.len(), 10000);
        assert_eq!(d.class_names[9], FASHION_MNIST_CLASSES[9]);
    }
}

#[test]
fn fashion_mnist_source_order() {
    let none = Path::new("/nonexistent/fashion-mnist");
    let sub = PathBuf::from(SUBSET_DIR);
    // Without the package the committed subset is used; an override wins over both.
    let got = resolve_fashion_mnist(None, none, Split::Test).unwrap();
    assert_eq!(got, (sub.clone(), Source::Subset));
    let got = resolve_fashion_mnist(None, &sub, Split::Train).unwrap();
    assert_eq!(got, (sub.clone(), Source::Debian));
    let dir = tmp_dir("source");
    synthetic(3, 28, 28, 10)
        .write_idx(&dir, Split::Test)
        .unwrap();
    let got = resolve_fashion_mnist(Some(&dir), &sub, Split::Test).unwrap();
    assert_eq!(got, (dir.clone(), Source::Env));
    // An override without the files is an error, not a silent fallback.
    let e = err_of(resolve_fashion_mnist(Some(&dir), &sub, Split::Train));
    assert!(
        e.contains(ENV_VAR) && e.contains("train-images-idx3-ubyte.gz"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn idx_round_trip_and_raw_files() {
    let dir = tmp_dir("roundtrip");
    let d = synthetic(13, 5, 7, 4);
    d.write_idx(&dir, Split::Test).unwrap();
    let mut back = f8net::data::load_idx_files(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
        4,
    )
    .unwrap();
    assert_eq!(back, d);
    // Uncompressed IDX is accepted too: under the .gz name, or the name without .gz.
    let (a, b) = Split::Train.idx_names();
    let raw = idx::encode(IMAGES_MAGIC, &[13, 5, 7], &d.images, false).unwrap();
    std::fs::write(dir.join(a), raw).unwrap();
    let raw = idx::encode(LABELS_MAGIC, &[13], &d.labels, false).unwrap();
    std::fs::write(dir.join(b.trim_end_matches(".gz")), raw).unwrap();
    back = load_dir(&dir, Split::Train, &FolderOptions::default()).unwrap();
    assert_eq!((back.images, back.labels), (d.images, d.labels));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_idx_inputs_fail_clearly() {
    let dir = tmp_dir("corrupt");
    let d = synthetic(6, 4, 4, 10);
    let img = (IMAGES_MAGIC, &[6u32, 4, 4][..], &d.images[..]);
    let lbl = (LABELS_MAGIC, &[6u32][..], &d.labels[..]);
    let load = || load_idx(&dir, Split::Train);

    // Wrong magic in either file.
    write_pair(&dir, Split::Train, (0x0000_0802, img.1, img.2), lbl);
    let e = err_of(load());
    assert!(
        e.contains("train-images") && e.contains("magic number 0x00000802"),
        "{e}"
    );
    write_pair(&dir, Split::Train, img, (IMAGES_MAGIC, lbl.1, lbl.2));
    assert!(err_of(load()).contains("not an IDX label file"));

    // Count mismatch between the two files.
    write_pair(
        &dir,
        Split::Train,
        img,
        (LABELS_MAGIC, &[5], &d.labels[..5]),
    );
    let e = err_of(load());
    assert!(
        e.contains("count mismatch: 5 labels but") && e.contains("6 images"),
        "{e}"
    );

    // Header promises more data than there is / less.
    write_pair(&dir, Split::Train, (IMAGES_MAGIC, &[7, 4, 4], img.2), lbl);
    let e = err_of(load());
    assert!(
        e.contains("truncated") && e.contains("7 images of 4x4"),
        "{e}"
    );
    write_pair(&dir, Split::Train, (IMAGES_MAGIC, &[5, 4, 4], img.2), lbl);
    assert!(err_of(load()).contains("longer than its header says"));
    // An absurd count cannot make it allocate: it just finds the data too short.
    write_pair(
        &dir,
        Split::Train,
        (IMAGES_MAGIC, &[u32::MAX, 4096, 4096], img.2),
        lbl,
    );
    assert!(err_of(load()).contains("truncated"));
    write_pair(&dir, Split::Train, (IMAGES_MAGIC, &[6, 0, 4], img.2), lbl);
    assert!(err_of(load()).contains("image size 0x4"));

    // Label out of range.
    let mut bad = d.labels.clone();
    bad[3] = 10;
    write_pair(&dir, Split::Train, img, (LABELS_MAGIC, &[6], &bad));
    let e = err_of(load());
    assert!(
        e.contains("label 10 at index 3 is out of range for 10 classes"),
        "{e}"
    );

    // Truncated gzip stream (cut mid-file), and a file cut inside the IDX header.
    write_pair(&dir, Split::Train, img, lbl);
    let path = dir.join("train-images-idx3-ubyte.gz");
    let gz = std::fs::read(&path).unwrap();
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let e = err_of(load());
    assert!(
        e.contains("train-images") && (e.contains("truncated") || e.contains("corrupt")),
        "{e}"
    );
    std::fs::write(&path, idx::encode(IMAGES_MAGIC, &[], &[], true).unwrap()).unwrap();
    assert!(err_of(load()).contains("truncated IDX header"));
    std::fs::write(&path, b"").unwrap();
    assert!(err_of(load()).contains("too short for an IDX header"));

    // Missing file.
    std::fs::remove_file(&path).unwrap();
    let e = err_of(load());
    assert!(e.contains("train-images-idx3-ubyte.gz: cannot open"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn save_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            rgb[0].wrapping_add(x as u8),
            rgb[1].wrapping_add(y as u8),
            rgb[2],
        ])
    })
    .save(path)
    .unwrap();
}

#[test]
fn image_folders_load_and_fail_clearly() {
    let dir = tmp_dir("folder");
    let opts = FolderOptions::default();
    // Not a folder / no class subfolders.
    assert!(err_of(load_folder(dir.join("nope"), &opts)).contains("not a folder"));
    assert!(err_of(load_folder(&dir, &opts)).contains("no class subfolders"));
    // An empty class folder (a text file is not an image).
    std::fs::create_dir_all(dir.join("b_cat")).unwrap();
    std::fs::write(dir.join("b_cat/notes.txt"), "x").unwrap();
    let e = err_of(load_folder(&dir, &opts));
    assert!(e.contains("b_cat") && e.contains("has no images"), "{e}");

    // Grey images: one channel; classes sorted by name.
    std::fs::create_dir_all(dir.join("a_dog")).unwrap();
    for (i, sub) in ["b_cat", "a_dog"].iter().enumerate() {
        for k in 0..2 {
            let v = (40 * i + 10 * k) as u8;
            image::GrayImage::from_pixel(6, 5, image::Luma([v]))
                .save(dir.join(format!("{sub}/{k}.png")))
                .unwrap();
        }
    }
    let d = load_folder(&dir, &opts).unwrap();
    assert_eq!((d.len(), d.h, d.w, d.c, d.classes), (4, 5, 6, 1, 2));
    assert_eq!(d.class_names, vec!["a_dog", "b_cat"]);
    assert_eq!(d.labels, vec![0, 0, 1, 1]);
    assert_eq!(d.image(2)[0], 0); // b_cat/0.png, value 40·0
    assert_eq!(d.image(1)[0], 50); // a_dog/1.png, value 40 + 10

    // A colour image makes the set RGB (Auto) unless Gray is asked for.
    save_png(&dir.join("a_dog/2.png"), 6, 5, [200, 10, 30]);
    let d = load_folder(&dir, &opts).unwrap();
    assert_eq!((d.c, d.len()), (3, 5));
    assert_eq!(&d.image(2)[..3], &[200, 10, 30]);
    let g = load_folder(
        &dir,
        &FolderOptions {
            color: ColorMode::Gray,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(g.c, 1);
    assert_eq!(g.image(2)[0], f8net::data::folder::luma(200, 10, 30));

    // Mixed sizes: refused without a resize, resized with one.
    save_png(&dir.join("b_cat/9.png"), 9, 9, [1, 2, 3]);
    let e = err_of(load_folder(&dir, &opts));
    assert!(
        e.contains("mixed image sizes") && e.contains("9.png is 9x9"),
        "{e}"
    );
    let r = load_folder(
        &dir,
        &FolderOptions {
            size: Some((4, 3)),
            color: ColorMode::Rgb,
        },
    )
    .unwrap();
    assert_eq!((r.len(), r.h, r.w, r.c), (6, 4, 3, 3));

    // A corrupt image names its file.
    std::fs::write(dir.join("b_cat/broken.png"), b"\x89PNG\r\n\x1a\nxx").unwrap();
    let resize = FolderOptions {
        size: Some((5, 6)),
        ..opts
    };
    assert!(err_of(load_folder(&dir, &resize)).contains("broken.png"));

    // load_dir: IDX pair or DIR/train; otherwise says what it looked for.
    let e = err_of(load_dir(&dir, Split::Train, &opts));
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("subfolder train/"),
        "{e}"
    );
    assert!(err_of(load_dir(dir.join("missing"), Split::Test, &opts)).contains("does not exist"));
    std::fs::remove_dir_all(&dir).unwrap();
}
