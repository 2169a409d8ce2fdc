//! F8Net quantization-aware training (issue 4): the conv + BN unit with its full backward
//! (`conv_bn`), the classifier with its SAT rescale (`linear`), and a network of them with
//! shared clipping levels, loss and SGD (`net`) on the CPU; the same training step recorded on
//! the GPU (`gpu`); checkpoints, export to the integer model (`export`) and to a float model for
//! post-training quantization (`to_float`); `f8net train` (`run`, `backend`, `progress`,
//! `outputs`) and `f8net eval` (`eval`).

pub mod backend;
pub mod bn_stats;
pub mod checkpoint;
pub mod conv_bn;
pub mod eval;
pub mod export;
pub mod fp_start;
pub mod from_arch;
pub mod gpu;
pub mod linear;
pub mod net;
pub mod outputs;
pub mod progress;
pub mod rebuild;
pub mod run;
pub mod to_float;
pub mod weight_format;
