//! The float EfficientNet-Lite0 on the CPU against the NumPy golden logits
//! (`tests/fixtures/efficientnet_lite0_golden.json`, `tools/reference_forward.py`), the image
//! preprocessing on real photos, and bad inputs (missing, not an image, truncated, enormous).
//! Forward times are printed, not asserted.

use f8net::model::efficientnet::{self, input_from_rgb, NUM_CLASSES};
use f8net::model::float::FloatModel;
use f8net::model::st;
use f8net::preprocess::{self, INPUT_SIZE};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

const MODEL: &str = "assets/models/efficientnet_lite0.f32.safetensors";
const GOLDEN: &str = "tests/fixtures/efficientnet_lite0_golden.json";
/// Logits: max |rust − numpy| ≤ LOGIT_RTOL · max |numpy logit| (float32 with a different
/// summation order and BN folded into the weights; measured ≈ 1e-6 relative).
const LOGIT_RTOL: f32 = 1e-3;
/// Our decoder/resampler vs Pillow's on the golden photos: mean |Δ| per byte (levels of 255).
const PREPROCESS_MEAN_ABS_TOL: f64 = 2.0;

fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn model() -> &'static FloatModel {
    static M: OnceLock<FloatModel> = OnceLock::new();
    M.get_or_init(|| match efficientnet::load_float(root(MODEL)) {
        Ok(m) => m,
        Err(e) => panic!("loading {MODEL}: {e}"),
    })
}

struct Golden {
    name: String,
    rgb: Vec<u8>,
    top1: usize,
    logits: Vec<f32>,
}

fn golden() -> Vec<Golden> {
    let text = std::fs::read_to_string(root(GOLDEN)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = json["cases"].as_array().unwrap();
    cases
        .iter()
        .map(|c| Golden {
            name: c["name"].as_str().unwrap().to_string(),
            rgb: std::fs::read(root(c["rgb"].as_str().unwrap())).unwrap(),
            top1: c["top1"].as_u64().unwrap() as usize,
            logits: c["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Run a batch of HWC uint8 images; returns the logits per image and the time per image.
fn classify(images: &[&[u8]]) -> (Vec<Vec<f32>>, f64) {
    let mut x = Vec::new();
    for img in images {
        x.extend(input_from_rgb(img));
    }
    let t = Instant::now();
    let logits = model().forward(&x, images.len()).unwrap();
    let per_image = t.elapsed().as_secs_f64() / images.len() as f64;
    assert_eq!(logits.len(), images.len() * NUM_CLASSES);
    (
        logits.chunks(NUM_CLASSES).map(<[f32]>::to_vec).collect(),
        per_image,
    )
}

#[test]
fn float_logits_match_golden() {
    let cases = golden();
    assert_eq!(cases.len(), 2);
    let batch: Vec<&[u8]> = cases.iter().map(|c| c.rgb.as_slice()).collect();
    let (logits, per_image) = classify(&batch);
    eprintln!(
        "float forward (CPU, batch {}): {:.1} ms/image",
        batch.len(),
        per_image * 1e3
    );
    for (case, got) in cases.iter().zip(&logits) {
        let max_ref = case.logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let max_err = got
            .iter()
            .zip(&case.logits)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "{}: max |Δlogit| = {max_err:.3e} (max |logit| {max_ref:.3}, rel {:.2e})",
            case.name,
            max_err / max_ref
        );
        assert!(
            max_err <= LOGIT_RTOL * max_ref,
            "{}: max |Δ| {max_err} > {LOGIT_RTOL}·{max_ref}",
            case.name
        );
        assert_eq!(argmax(got), case.top1, "{}: top-1", case.name);
    }
    // Batch 1 gives the same logits as inside a batch (up to GEMM blocking).
    let (single, per_image) = classify(&batch[..1]);
    eprintln!(
        "float forward (CPU, batch 1): {:.1} ms/image",
        per_image * 1e3
    );
    let diff = single[0]
        .iter()
        .zip(&logits[0])
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4, "batch 1 vs batch 2: max |Δ| {diff}");
}

#[test]
fn photos_classify_and_match_fixture_preprocessing() {
    let cases = golden();
    let mut imgs = Vec::new();
    for case in &cases {
        let img =
            preprocess::load_image(root(&format!("assets/images/{}.jpg", case.name))).unwrap();
        assert_eq!((img.width(), img.height()), (INPUT_SIZE, INPUT_SIZE));
        let bytes = img.into_bytes();
        let mean_abs = bytes
            .iter()
            .zip(&case.rgb)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / bytes.len() as f64;
        let max_abs = bytes
            .iter()
            .zip(&case.rgb)
            .map(|(&a, &b)| a.abs_diff(b))
            .max()
            .unwrap_or(0);
        eprintln!(
            "{}: preprocess vs Pillow fixture: mean |Δ| {mean_abs:.3}, max |Δ| {max_abs}",
            case.name
        );
        assert!(
            mean_abs <= PREPROCESS_MEAN_ABS_TOL,
            "{}: mean |Δ| {mean_abs}",
            case.name
        );
        imgs.push(bytes);
    }
    let batch: Vec<&[u8]> = imgs.iter().map(Vec::as_slice).collect();
    let (logits, _) = classify(&batch);
    let (chelsea, coffee) = (argmax(&logits[0]), argmax(&logits[1]));
    eprintln!("top-1: chelsea {chelsea}, coffee {coffee}");
    assert!(
        (281..=285).contains(&chelsea),
        "chelsea top-1 {chelsea} is not a cat"
    );
    assert!([967, 968, 504].contains(&coffee), "coffee top-1 {coffee}");
}

#[test]
fn fixture_bytes_round_trip_and_flip() {
    let rgb = std::fs::read(root("tests/fixtures/chelsea_224.rgb")).unwrap();
    let img = preprocess::from_rgb_bytes(&rgb, INPUT_SIZE, INPUT_SIZE).unwrap();
    assert_eq!(img.as_bytes(), rgb.as_slice());
    assert_eq!(img.flip_horizontal().flip_horizontal(), img);
    assert_eq!(
        &img.flip_horizontal().as_bytes()[..3],
        &rgb[(INPUT_SIZE - 1) * 3..INPUT_SIZE * 3]
    );
    assert!(preprocess::from_rgb_bytes(&rgb[1..], INPUT_SIZE, INPUT_SIZE).is_err());
    assert!(preprocess::from_rgb_bytes(&[], 0, 0).is_err());
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> TempFile {
    let name = format!("f8net-model-float-{}-{name}", std::process::id());
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    TempFile(path)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG (valid chunk CRCs) whose header declares `w`×`h` RGB8 pixels, with one tiny IDAT (an
/// empty zlib stream) and IEND: a few dozen bytes that claim an enormous image.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let ihdr = [&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
    let idat = vec![0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(*b"IHDR", ihdr), (*b"IDAT", idat), (*b"IEND", vec![])] {
        out.extend((data.len() as u32).to_be_bytes());
        let body = [&kind[..], &data].concat();
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    out
}

#[test]
fn bad_images_are_errors() {
    let expect_err = |path: &Path, what: &str, needle: &str| {
        let err = preprocess::load_image(path)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let msg = err.to_string();
        eprintln!("{what}: {msg}");
        assert!(
            msg.contains(&path.display().to_string()),
            "{what}: error does not name the file: {msg}"
        );
        assert!(
            msg.contains(needle),
            "{what}: expected {needle:?} in {msg:?}"
        );
    };
    expect_err(
        &root("assets/images/does_not_exist.jpg"),
        "missing file",
        "cannot open",
    );
    expect_err(
        &temp_file("notes.jpg", b"this is a text file, not a JPEG\n"),
        "text file",
        "not an image",
    );
    let jpeg = std::fs::read(root("assets/images/chelsea.jpg")).unwrap();
    expect_err(
        &temp_file("truncated.jpg", &jpeg[..2048]),
        "truncated JPEG",
        "truncated",
    );
    expect_err(
        &temp_file("half.jpg", &jpeg[..jpeg.len() / 2]),
        "half a JPEG",
        "truncated",
    );
    expect_err(
        &temp_file("huge.png", &png_header_only(100_000, 100_000)),
        "100000x100000 PNG",
        "too large",
    );
    expect_err(
        &temp_file("big.png", &png_header_only(16_000, 16_000)),
        "16000x16000 PNG",
        "too large",
    );
    expect_err(&temp_file("empty.png", b""), "empty file", "not an image");
    let png = std::fs::read(root("assets/images/astronaut.png")).unwrap();
    expect_err(
        &temp_file("truncated.png", &png[..png.len() / 2]),
        "truncated PNG",
        "decode",
    );
    // Only the final end-of-image marker missing.
    expect_err(
        &temp_file("no_eoi.jpg", &jpeg[..jpeg.len() - 2]),
        "JPEG without EOI",
        "truncated",
    );
    // Appended bytes after a complete JPEG are fine (common in the wild).
    let mut padded = jpeg.clone();
    padded.extend_from_slice(b"trailing");
    assert!(preprocess::load_image(temp_file("padded.jpg", &padded)).is_ok());
}

#[test]
fn bad_model_files_are_errors() {
    let expect_err = |path: &Path, what: &str| {
        let err = efficientnet::load_float(path)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        eprintln!("{what}: {err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{what}: {err}"
        );
    };
    expect_err(&root("assets/models/missing.safetensors"), "missing model");
    let bytes = std::fs::read(root(MODEL)).unwrap();
    expect_err(
        &temp_file("trunc.safetensors", &bytes[..bytes.len() / 2]),
        "truncated model",
    );
    expect_err(
        &temp_file("header.safetensors", &bytes[..100]),
        "truncated header",
    );
    expect_err(&temp_file("text.safetensors", b"hello"), "text model");

    // A tensor with the wrong shape, a missing tensor, an extra tensor: named in the error.
    let tensors = st::read_f32(root(MODEL)).unwrap();
    let build_err = |t| match efficientnet::float_from_tensors(t, "test", (INPUT_SIZE, INPUT_SIZE))
    {
        Ok(_) => panic!("a broken tensor set was accepted"),
        Err(e) => e.to_string(),
    };
    let mut t = tensors.clone();
    t.get_mut("_blocks.3._depthwise_conv.weight").unwrap().0 = vec![144, 1, 3, 3];
    let err = build_err(t);
    assert!(
        err.contains("_blocks.3._depthwise_conv.weight") && err.contains("[144, 1, 3, 3]"),
        "{err}"
    );
    let mut t = tensors.clone();
    t.remove("_fc.bias");
    let err = build_err(t);
    assert!(err.contains("missing tensor _fc.bias"), "{err}");
    let mut t = tensors;
    t.insert("_extra".into(), (vec![1], vec![0.0]));
    let err = build_err(t);
    assert!(err.contains("_extra"), "{err}");
}

#[test]
fn forward_rejects_wrong_input_length() {
    let x = vec![0.0f32; INPUT_SIZE * INPUT_SIZE * 3];
    assert!(model().forward(&x, 2).is_err());
    assert!(model().forward(&x[1..], 1).is_err());
    assert!(model().forward(&[], 0).is_err());
}

#[test]
fn forward_all_shapes_are_consistent() {
    let m = model();
    let shapes = m.tensor_shapes().unwrap();
    assert_eq!(shapes.len(), m.nodes.len() + 1);
    assert_eq!(shapes[0], [INPUT_SIZE, INPUT_SIZE, 3]);
    assert_eq!(shapes[1], [112, 112, 32]);
    assert_eq!(*shapes.last().unwrap(), [1, 1, NUM_CLASSES]);
    let x = input_from_rgb(&std::fs::read(root("tests/fixtures/coffee_224.rgb")).unwrap());
    let all = m.forward_all(&x, 1).unwrap();
    for (t, (v, s)) in all.iter().zip(&shapes).enumerate() {
        assert_eq!(v.len(), s.iter().product::<usize>(), "tensor {t}");
    }
    assert_eq!(all.last().unwrap(), &m.forward(&x, 1).unwrap());
}

/// CPU throughput (printed, not asserted): the float model at batch 1 and 8 (GEMM GFLOPS are in
/// `cargo bench --bench cpu`). Run alone for stable numbers:
/// `cargo test --release model_float::cpu_timing -- --ignored --nocapture --test-threads=1`.
#[test]
#[ignore]
fn cpu_timing() {
    let rgb = std::fs::read(root("tests/fixtures/chelsea_224.rgb")).unwrap();
    classify(&[&rgb]); // warm up
    for n in [1usize, 8] {
        let batch: Vec<&[u8]> = vec![rgb.as_slice(); n];
        let best = (0..3).map(|_| classify(&batch).1).fold(f64::MAX, f64::min);
        eprintln!(
            "EfficientNet-Lite0 float CPU, batch {n}: {:.1} ms/image",
            best * 1e3
        );
    }
}
