//! F8Net quantization-aware training (issue 4), CPU side first: the conv + BN unit with its
//! full backward (`conv_bn`), the classifier with its SAT rescale (`linear`), and a network of
//! them with shared clipping levels, loss and SGD (`net`). Still to come (issue 4): recording
//! the same units on the GPU, checkpoints, and export to the integer model.

pub mod checkpoint;
pub mod conv_bn;
pub mod export;
pub mod from_arch;
pub mod linear;
pub mod net;
pub mod run;
