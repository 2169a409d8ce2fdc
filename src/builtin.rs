//! The built-in model, embedded in the binary so `f8net infer` works from any folder:
//! EfficientNet-Lite0 (ImageNet-1k, Apache-2.0) converted to F8Net fixed point by
//! `f8net quantize` (see README), and the 1000 ImageNet labels (Apache-2.0).
//! Input convention of this network: RGB bytes x mapped to (x − 127)/128.

use crate::error::Result;
use crate::fixed::Format;
use crate::model::{file, int::IntModel};

/// The quantized model file (safetensors, f8net format).
pub const MODEL_BYTES: &[u8] = include_bytes!("../assets/models/efficientnet_lite0.f8.safetensors");

/// ImageNet labels, one per line, index order.
pub const LABELS: &str = include_str!("../assets/imagenet_classes.txt");

/// The built-in model, parsed and validated.
pub fn model() -> Result<IntModel> {
    file::from_bytes(MODEL_BYTES)
}

/// The 1000 labels.
pub fn labels() -> Vec<&'static str> {
    LABELS.lines().collect()
}

/// The float input of EfficientNet-Lite0: (x − 127)/128 per RGB byte.
pub fn normalize(rgb: &[u8]) -> Vec<f32> {
    rgb.iter().map(|&x| (x as f32 - 127.0) / 128.0).collect()
}

/// Input codes in `format` for RGB bytes (with FL 7, signed: x − 127, saturated to ±127).
pub fn input_codes(rgb: &[u8], format: Format) -> Vec<i32> {
    rgb.iter()
        .map(|&x| format.quantize((x as f32 - 127.0) / 128.0))
        .collect()
}
