//! The built-in F8Net EfficientNet-Lite0: its file validates and round-trips, the GPU integer
//! logits equal the CPU reference's bit for bit on the sample photos, and corrupt files are
//! refused with clear errors before any GPU work.

use crate::common::*;
use f8net::builtin;
use f8net::model::file::{from_bytes, to_bytes};
use f8net::model::run_cpu;
use f8net::model::run_gpu::GpuModel;
use f8net::preprocess;
use std::collections::HashMap;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    preprocess::load_rgb_raw(&path, 224, 224)
        .unwrap()
        .into_bytes()
}

#[test]
fn builtin_model_validates_and_round_trips() {
    let model = builtin::model().unwrap();
    let info = model.infer_tensors().unwrap();
    assert_eq!(info.last().unwrap().c, 1000);
    let again = from_bytes(&to_bytes(&model).unwrap()).unwrap();
    assert_eq!(again, model);
}

#[test]
fn gpu_logits_equal_cpu_reference_on_sample_photos() {
    let Some(gpu) = gpu_or_skip() else { return };
    let model = builtin::model().unwrap();
    let images = [fixture("chelsea_224.rgb"), fixture("coffee_224.rgb")];
    let codes: Vec<i32> = images
        .iter()
        .flat_map(|b| builtin::input_codes(b, model.input_format))
        .collect();
    let cpu = run_cpu::forward(&model, &codes, 2).unwrap();
    let on_gpu = GpuModel::upload(gpu, &model).unwrap();
    let got = on_gpu.forward(gpu, &codes, 2).unwrap();
    assert_exact(
        &got,
        &cpu,
        "EfficientNet-Lite0 logits, GPU vs CPU reference",
    );
    let top1 = |l: &[i32]| f8net::compare::top_k(l, 1)[0];
    assert!(
        (281..=285).contains(&top1(&cpu[..1000])),
        "cat photo top-1 {}",
        top1(&cpu[..1000])
    );
    assert!(
        [967, 968, 504].contains(&top1(&cpu[1000..])),
        "coffee top-1 {}",
        top1(&cpu[1000..])
    );
}

/// The builtin file with its metadata edited by `edit`.
fn with_metadata(edit: impl Fn(&mut HashMap<String, String>)) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(builtin::MODEL_BYTES).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(builtin::MODEL_BYTES).unwrap();
    let mut info = meta.metadata().clone().unwrap();
    edit(&mut info);
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    safetensors::serialize(tensors, Some(info)).unwrap()
}

#[test]
fn corrupt_models_are_refused() {
    let bytes = builtin::MODEL_BYTES;
    let err = |b: &[u8]| from_bytes(b).unwrap_err().to_string();
    assert!(err(&bytes[..bytes.len() / 2]).contains("model"));
    assert!(err(b"not a model at all").contains("model"));
    let v2 = with_metadata(|m| {
        m.insert("f8net.version".into(), "2".into());
    });
    assert!(err(&v2).contains("version 2"), "{}", err(&v2));
    // An activation FL outside the paper's range (signed 0..=7).
    let bad_fl = with_metadata(|m| {
        let g = m.get("f8net.graph").unwrap().replacen(
            r#""input_format":{"fl":7"#,
            r#""input_format":{"fl":9"#,
            1,
        );
        m.insert("f8net.graph".into(), g);
    });
    let msg = err(&bad_fl);
    assert!(msg.contains("fractional length 9"), "{msg}");
    let no_graph = with_metadata(|m| {
        m.remove("f8net.graph");
    });
    assert!(err(&no_graph).contains("graph"));
}

#[test]
fn builtin_accumulators_stay_inside_int32() {
    // With weight FLs up to 15 the int32 biases grow: check |bias| + 255·127·K < 2^31 − 1 for
    // every layer, so no accumulator of the built-in model can saturate.
    use f8net::model::int::{ConvKind, IntNode};
    let model = builtin::model().unwrap();
    let mut checked = 0;
    for node in &model.nodes {
        let (layer, k) = match node {
            IntNode::Conv {
                kind: ConvKind::Dense,
                cin,
                window,
                layer,
                ..
            } => (layer, window.kh * window.kw * cin),
            IntNode::Conv {
                kind: ConvKind::Depthwise,
                window,
                layer,
                ..
            } => (layer, window.kh * window.kw),
            IntNode::Linear { k, layer, .. } => (layer, *k),
            _ => continue,
        };
        let max_bias = layer
            .ep
            .bias
            .iter()
            .map(|b| (*b as i64).abs())
            .max()
            .unwrap();
        let bound = max_bias + 255 * 127 * k as i64;
        assert!(
            bound < i32::MAX as i64,
            "{}: |bias| {max_bias} + 255·127·{k} = {bound}",
            layer.name
        );
        checked += 1;
    }
    assert_eq!(checked, 50, "conv and linear layers of EfficientNet-Lite0");
}
