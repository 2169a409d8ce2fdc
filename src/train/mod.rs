//! F8Net quantization-aware training (issue 4), CPU side first: the conv + BN unit with its
//! full backward (`conv_bn`), and the classifier with its SAT rescale (`linear`). The network graph, optimizer loop, checkpoints and the GPU
//! recording of the same unit build on it.

pub mod conv_bn;
pub mod linear;
