//! The `f8net` binary on good and bad inputs: the sample photos' labels, JSON output, and one
//! clear error line with a non-zero exit (never a panic) for every kind of bad input. `train` and
//! `eval` are in `cli_train`.

use crate::common::gpu_or_skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn f8net(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_f8net"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run f8net")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Backend flag: the GPU when the tests have one (lavapipe in CI), else the CPU reference.
pub(crate) fn backend() -> Vec<&'static str> {
    if gpu_or_skip().is_some() {
        vec![]
    } else {
        vec!["--cpu"]
    }
}

/// Top-1 class of each image in `infer` text output, in order.
fn top1s(stdout: &str) -> Vec<usize> {
    let lines: Vec<&str> = stdout.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("ms/image") {
            let first = lines[i + 1].split_whitespace().next().unwrap();
            out.push(first.parse().unwrap());
        }
    }
    out
}

pub(crate) fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("f8net-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A failed run: non-zero exit, stderr one or more `f8net:` lines mentioning `needle`, no panic.
pub(crate) fn assert_clean_failure(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("f8net:")).collect();
    assert!(!lines.is_empty(), "no f8net: error line in {err}");
    assert!(
        err.contains(needle),
        "stderr does not mention {needle}: {err}"
    );
}

#[test]
fn infer_classifies_the_sample_photos() {
    let mut args = vec![
        "infer",
        "assets/images/chelsea.jpg",
        "assets/images/coffee.jpg",
    ];
    args.extend(backend());
    let out = f8net(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let top = top1s(&stdout);
    assert_eq!(top.len(), 2, "{stdout}");
    assert!(
        (281..=285).contains(&top[0]),
        "cat photo top-1 {}: {stdout}",
        top[0]
    );
    assert!(
        [967, 968, 504].contains(&top[1]),
        "coffee top-1 {}: {stdout}",
        top[1]
    );
    assert!(stdout.contains("espresso"), "{stdout}");
}

#[test]
fn infer_json_and_top_k() {
    let mut args = vec!["infer", "--json", "--top", "3", "assets/images/coffee.jpg"];
    args.extend(backend());
    let out = f8net(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["top"].as_array().unwrap().len(), 3);
    assert_eq!(v["labels"].as_array().unwrap().len(), 3);
    let p: Vec<f64> = v["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(p[0] >= p[1] && p[1] >= p[2] && p[0] <= 1.0);
    assert!(v["path"].as_str().unwrap().ends_with("coffee.jpg"));
}

#[test]
fn bad_images_give_one_clear_line() {
    let d = tmp_dir("images");
    let text_file = d.join("notes.jpg");
    std::fs::write(&text_file, "this is not an image").unwrap();
    let jpeg =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images/chelsea.jpg"))
            .unwrap();
    let truncated = d.join("truncated.jpg");
    std::fs::write(&truncated, &jpeg[..2048]).unwrap();
    // A PNG header declaring 100000 × 100000 pixels.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend(100_000u32.to_be_bytes());
    png.extend(100_000u32.to_be_bytes());
    png.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let huge = d.join("huge.png");
    std::fs::write(&huge, &png).unwrap();
    for (path, needle) in [
        (d.join("missing.jpg"), "missing.jpg"),
        (text_file, "notes.jpg"),
        (truncated, "truncated.jpg"),
        (huge, "huge.png"),
    ] {
        let out = f8net(&["infer", "--cpu", path.to_str().unwrap()]);
        assert_clean_failure(&out, needle);
    }
}

#[test]
fn a_folder_with_one_bad_image_classifies_the_others() {
    let d = tmp_dir("folder");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("assets/images/coffee.jpg"),
        d.join("a_coffee.jpg"),
    )
    .unwrap();
    std::fs::write(d.join("b_broken.jpg"), "broken").unwrap();
    std::fs::copy(root.join("assets/images/chelsea.jpg"), d.join("c_cat.jpg")).unwrap();
    let mut args = vec!["infer", d.to_str().unwrap()];
    args.extend(backend());
    let out = f8net(&args);
    assert_clean_failure(&out, "b_broken.jpg");
    let top = top1s(&text(&out.stdout));
    assert_eq!(top.len(), 2, "{}", text(&out.stdout));
    assert!([967, 968, 504].contains(&top[0]));
    assert!((281..=285).contains(&top[1]));
}

#[test]
fn bad_model_files_give_one_clear_line() {
    let d = tmp_dir("models");
    let bytes = f8net::builtin::MODEL_BYTES;
    let truncated = d.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, [7u8; 64]).unwrap();
    for (path, needle) in [
        (d.join("absent.safetensors"), "absent.safetensors"),
        (truncated, "truncated.safetensors"),
        (garbage, "garbage.safetensors"),
    ] {
        let out = f8net(&[
            "infer",
            "--cpu",
            "--model",
            path.to_str().unwrap(),
            "assets/images/coffee.jpg",
        ]);
        assert_clean_failure(&out, needle);
    }
}

/// The built-in model file with its metadata edited by `edit`, written to `path`.
fn write_edited_model(path: &Path, edit: impl Fn(&mut std::collections::HashMap<String, String>)) {
    let bytes = f8net::builtin::MODEL_BYTES;
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let mut info = meta.metadata().clone().unwrap();
    edit(&mut info);
    std::fs::write(
        path,
        safetensors::serialize(st.tensors(), Some(info)).unwrap(),
    )
    .unwrap();
}

#[test]
fn models_with_a_wrong_version_or_fl_give_one_clear_line() {
    let d = tmp_dir("versions");
    let v9 = d.join("v9.safetensors");
    write_edited_model(&v9, |m| {
        m.insert("f8net.version".into(), "9".into());
    });
    let fl = d.join("fl.safetensors");
    write_edited_model(&fl, |m| {
        let g =
            m["f8net.graph"].replacen(r#""input_format":{"fl":7"#, r#""input_format":{"fl":12"#, 1);
        m.insert("f8net.graph".into(), g);
    });
    for (path, needle) in [(v9, "version 9"), (fl, "fractional length 12")] {
        let out = f8net(&[
            "infer",
            "--cpu",
            "--model",
            path.to_str().unwrap(),
            "assets/images/coffee.jpg",
        ]);
        assert_clean_failure(&out, needle);
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn without_a_usable_adapter_infer_says_so_and_runs_on_the_cpu() {
    let out = Command::new(env!("CARGO_BIN_EXE_f8net"))
        .args(["infer", "assets/images/coffee.jpg"])
        .env("F8NET_ADAPTER", "no-such-adapter")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("running on the CPU reference"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("CPU reference"));
    assert!([967, 968, 504].contains(&top1s(&text(&out.stdout))[0]));
}
