//! Models: float graphs and their CPU forward pass, model-specific builders and the safetensors
//! reading they share.
//!
//! - [`float`]: the float32 graph (`FloatModel`, NHWC tensors, OHWI weights, BN folded) and its
//!   CPU forward on the reference ops (im2col + threaded sgemm, direct depthwise); the yardstick
//!   and calibration source for quantized models.
//! - [`efficientnet`]: EfficientNet-Lite0 from `assets/models/efficientnet_lite0.f32.safetensors`,
//!   and its input normalization.
//! - [`int`]: the integer F8Net graph; [`file`]: its safetensors file; [`run_cpu`]: its CPU
//!   reference executor; [`run_gpu`]: its GPU executor.
//! - [`run_gpu_f32`]: the float graph on the GPU (f32 kernels; the f32 side of the benchmarks).
//! - [`st`]: reading f32 tensors from safetensors files with file-level errors.

pub mod efficientnet;
pub mod file;
pub mod float;
pub mod int;
pub mod run_cpu;
pub mod run_gpu;
pub mod run_gpu_f32;
pub mod st;
