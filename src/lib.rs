//! f8net: F8Net (Jin et al., ICLR 2022) — neural networks whose inference uses only 8-bit
//! fixed-point multiplications — on wgpu compute shaders, with a CPU reference that is both the
//! specification and a backend.
//!
//! Module map:
//! - [`fixed`]: the fixed-point format (quantize, requantize by shift, residual alignment).
//! - [`fraclen`]: choosing fractional lengths from statistics.
//! - [`tensor`]: NHWC tensors on the host and the GPU, packing four codes per word.
//! - [`gpu`]: the only module that calls wgpu (adapter, device, buffers, kernels, timing).
//! - [`ops`]: GPU launchers, one per shader in `shaders/`.
//! - [`reference`]: CPU spec of every kernel, bit-exact for integer ops.
//! - [`model`]: float and integer graphs, the model file, CPU and GPU executors.
//! - [`arch`]: ResNet-18/50/20 and MobileNet-V1/V2 descriptions (torchvision names, F8Net
//!   wiring) and their float models.
//! - [`quantize`]: float → F8Net fixed-point conversion; [`builtin`]: the embedded model.
//! - [`preprocess`]: image decoding and resizing; [`compare`]: float-vs-fixed agreement.
//! - [`data`]: Fashion-MNIST (IDX) and image-folder datasets, seeded batching and augmentation.
//! - [`train`]: F8Net quantization-aware training on the CPU: conv+BN unit, classifier, network,
//!   checkpoints, export to the integer model; `f8net train` and `f8net eval`.
//! - [`plot`]: PNG line charts and heat maps (training curves, fractional lengths).
//! - [`bench`]: throughput benchmarks (device ceilings, int8 vs f32 kernels and models).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod arch;
pub mod bench;
pub mod builtin;
pub mod compare;
pub mod data;
pub mod error;
pub mod fixed;
pub mod fraclen;
pub mod gpu;
pub mod io;
pub mod model;
pub mod ops;
pub mod plot;
pub mod preprocess;
pub mod quantize;
pub mod reference;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
