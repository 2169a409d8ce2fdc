//! `f8net quantize` and `f8net compare` end to end on the real EfficientNet-Lite0: a freshly
//! quantized model classifies a photo; the built-in model agrees with the float model on the
//! project's evaluation set (assets/eval, 54 inputs) as the README states.

use crate::common::gpu_or_skip;
use std::path::Path;
use std::process::Command;

const FLOAT: &str = "assets/models/efficientnet_lite0.f32.safetensors";

fn f8net(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_f8net"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run f8net")
}

fn rate(report: &str, prefix: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix} in {report}"));
    line.rsplit("= ").next().unwrap().trim().parse().unwrap()
}

#[test]
fn quantize_writes_a_working_model_and_keeps_old_files_on_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = std::env::temp_dir().join(format!("f8net-quantize-{}", std::process::id()));
    let calib = d.join("calib");
    std::fs::create_dir_all(&calib).unwrap();
    for f in ["chelsea_crop60.jpg", "coffee_crop60.jpg", "rocket_rot8.jpg"] {
        std::fs::copy(root.join("assets/calib").join(f), calib.join(f)).unwrap();
    }
    let out = d.join("m.safetensors");
    let r = f8net(&[
        "quantize",
        FLOAT,
        "--calib",
        calib.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = f8net(&[
        "infer",
        "--cpu",
        "--json",
        "--model",
        out.to_str().unwrap(),
        "assets/images/coffee.jpg",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let top1 = v["top"][0].as_u64().unwrap();
    assert!([967, 968, 504].contains(&top1), "coffee top-1 {top1}");
    // A failing run (no calibration images) leaves the existing model untouched.
    let before = std::fs::read(&out).unwrap();
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = f8net(&[
        "quantize",
        FLOAT,
        "--calib",
        empty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).starts_with("f8net: "));
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn builtin_model_agrees_with_float_on_the_evaluation_set() {
    let mut args = vec!["compare", "assets/eval", "--float", FLOAT];
    if gpu_or_skip().is_none() {
        args.push("--cpu");
    }
    let r = f8net(&args);
    let report = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    eprintln!("{report}");
    assert!(report.contains("inputs: 54"), "{report}");
    assert!(
        rate(&report, "float top-1 in fixed-point top-5") >= 0.98,
        "{report}"
    );
    assert!(
        rate(&report, "top-1 agreement where float") >= 0.98,
        "{report}"
    );
    assert!(rate(&report, "top-1 agreement:") >= 0.90, "{report}");
}
