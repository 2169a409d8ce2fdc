//! Training batches: seeded, resumable batching (`data::Loader`) and augmentation (crop with
//! padding, flip) against a naive reference. Loading the data: `tests/data.rs`.

use crate::data::{err_of, synthetic};
use f8net::data::augment::{self, crop_padded, flip_horizontal};
use f8net::data::{load_idx, Loader, LoaderConfig, Split, SplitMix64, SUBSET_DIR};

/// Naive crop-with-padding: pad with zeros, then cut at (dy, dx).
fn naive_crop(
    src: &[u8],
    h: usize,
    w: usize,
    c: usize,
    pad: usize,
    dy: usize,
    dx: usize,
) -> Vec<u8> {
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut padded = vec![0u8; ph * pw * c];
    for y in 0..h {
        for x in 0..w {
            for k in 0..c {
                padded[((y + pad) * pw + x + pad) * c + k] = src[(y * w + x) * c + k];
            }
        }
    }
    let mut out = Vec::with_capacity(h * w * c);
    for y in 0..h {
        out.extend_from_slice(&padded[((y + dy) * pw + dx) * c..((y + dy) * pw + dx + w) * c]);
    }
    out
}

#[test]
fn crop_with_padding_only_shifts_content() {
    let mut rng = SplitMix64::new(3);
    for (h, w, c, pad) in [
        (28, 28, 1, 2),
        (5, 7, 3, 2),
        (4, 4, 1, 0),
        (3, 5, 2, 6),
        (32, 32, 3, 4),
    ] {
        let src: Vec<u8> = (0..h * w * c)
            .map(|_| 1 + (rng.next_u64() % 255) as u8)
            .collect();
        for dy in 0..=2 * pad {
            for dx in 0..=2 * pad {
                let mut out = vec![0xAA; h * w * c];
                crop_padded(&src, &mut out, (h, w, c), pad, (dy, dx));
                assert_eq!(
                    out,
                    naive_crop(&src, h, w, c, pad, dy, dx),
                    "{h}x{w}x{c} pad {pad} at ({dy},{dx})"
                );
            }
        }
        // The centre window is the identity.
        let mut out = vec![0; h * w * c];
        crop_padded(&src, &mut out, (h, w, c), pad, (pad, pad));
        assert_eq!(out, src);
    }
}

#[test]
fn flip_twice_is_identity() {
    let (h, w, c) = (3, 5, 2);
    let src: Vec<u8> = (0..(h * w * c) as u8).collect();
    let mut img = src.clone();
    flip_horizontal(&mut img, h, w, c);
    assert_ne!(img, src);
    for y in 0..h {
        for x in 0..w {
            let (a, b) = ((y * w + x) * c, (y * w + w - 1 - x) * c);
            assert_eq!(img[a..a + c], src[b..b + c]);
        }
    }
    flip_horizontal(&mut img, h, w, c);
    assert_eq!(img, src);
    // Augment::NONE copies and draws nothing from the generator.
    let mut r = SplitMix64::new(1);
    let mut out = vec![0u8; src.len()];
    augment::apply(&augment::Augment::NONE, &src, &mut out, (h, w, c), &mut r);
    assert_eq!((out, r.state()), (src, 1));
}

fn epoch_batches(loader: &mut Loader) -> Vec<f8net::data::Batch> {
    std::iter::from_fn(|| loader.next_batch()).collect()
}

#[test]
fn loader_is_seeded_and_augments() {
    let d = load_idx(SUBSET_DIR, Split::Test).unwrap();
    let cfg = LoaderConfig::train(32, 11, 2);
    let run = |cfg: LoaderConfig| {
        let mut l = Loader::new(&d, cfg).unwrap();
        let e0 = epoch_batches(&mut l);
        l.next_epoch();
        (e0, epoch_batches(&mut l))
    };
    let (a0, a1) = run(cfg);
    let (b0, b1) = run(cfg);
    assert_eq!((a0.len(), a1.len()), (6, 6)); // 200 / 32, last partial batch dropped
    assert_eq!(a0, b0);
    assert_eq!(a1, b1);
    assert_ne!(a0[0].indices, a1[0].indices, "epochs shuffle differently");
    let (c0, _) = run(LoaderConfig { seed: 12, ..cfg });
    assert_ne!(a0[0].indices, c0[0].indices, "seeds shuffle differently");
    // Same order, different augmentation across seeds/epochs: compare with shuffling off.
    let fixed = LoaderConfig {
        shuffle: false,
        ..cfg
    };
    let (f0, f1) = run(fixed);
    let (g0, _) = run(LoaderConfig { seed: 99, ..fixed });
    assert_eq!(f0[0].indices, f1[0].indices);
    assert_ne!(
        f0[0].bytes, f1[0].bytes,
        "augmentation differs across epochs"
    );
    assert_ne!(
        f0[0].bytes, g0[0].bytes,
        "augmentation differs across seeds"
    );

    let b = &a0[0];
    assert_eq!(
        (b.n, b.h, b.w, b.c, b.inputs.len()),
        (32, 28, 28, 1, 32 * 784)
    );
    for (&k, &x) in b.bytes.iter().zip(&b.inputs) {
        assert_eq!(x, f32::from(k) / 256.0);
    }
    for (i, &idx) in b.indices.iter().enumerate() {
        assert_eq!(b.labels[i], d.labels[idx]);
    }
    // Every augmented image is some crop/flip of its source (pixel sums can only drop).
    for (i, &idx) in b.indices.iter().enumerate() {
        let sum = |v: &[u8]| v.iter().map(|&p| u32::from(p)).sum::<u32>();
        assert!(sum(&b.bytes[i * 784..(i + 1) * 784]) <= sum(d.image(idx)));
    }
    // An epoch visits every image once.
    let mut seen: Vec<usize> = a0.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6 * 32);
}

#[test]
fn eval_loader_visits_all_in_order() {
    let d = synthetic(10, 3, 3, 10);
    let mut l = Loader::new(&d, LoaderConfig::eval(4)).unwrap();
    assert_eq!(l.batches_per_epoch(), 3);
    let b = epoch_batches(&mut l);
    assert_eq!(b.iter().map(|b| b.n).collect::<Vec<_>>(), vec![4, 4, 2]);
    assert_eq!(
        b.iter().flat_map(|b| b.bytes.clone()).collect::<Vec<_>>(),
        d.images
    );
    assert!(l.next_batch().is_none());
    assert!(err_of(Loader::new(&d, LoaderConfig::eval(0))).contains("batch size"));
    assert!(err_of(Loader::new(&d, LoaderConfig::train(11, 0, 1))).contains("larger than"));
}

#[test]
fn resume_from_state_gives_identical_batches() {
    let d = load_idx(SUBSET_DIR, Split::Test).unwrap();
    let cfg = LoaderConfig::train(24, 5, 2);
    let mut full = Loader::new(&d, cfg).unwrap();
    let mut reference = Vec::new();
    let mut saved = None;
    for epoch in 0..3 {
        for k in 0.. {
            if epoch == 1 && k == 3 {
                saved = Some(full.state());
            }
            match full.next_batch() {
                Some(b) => reference.push((epoch, b)),
                None => break,
            }
        }
        full.next_epoch();
    }
    let state = saved.unwrap();
    assert_eq!((state.epoch, state.position), (1, 72));
    // Through serde, as a checkpoint would store it.
    let json = serde_json::to_string(&state).unwrap();
    let state = serde_json::from_str(&json).unwrap();
    let mut resumed = Loader::from_state(&d, cfg, state).unwrap();
    let mut tail = Vec::new();
    for epoch in 1..3 {
        while let Some(b) = resumed.next_batch() {
            tail.push((epoch, b));
        }
        resumed.next_epoch();
    }
    let per_epoch = 200 / 24;
    assert_eq!(tail.len(), 2 * per_epoch - 3);
    assert!(tail == reference[per_epoch + 3..], "resumed batches differ");

    // A state for another data set or seed is refused.
    let other = synthetic(10, 28, 28, 10);
    assert!(err_of(Loader::from_state(&other, cfg, state)).contains("200 images"));
    let e = err_of(Loader::from_state(
        &d,
        LoaderConfig { seed: 6, ..cfg },
        state,
    ));
    assert!(e.contains("seed"), "{e}");
}
