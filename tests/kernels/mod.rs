//! GPU kernels against the CPU reference, bit for bit for integer kernels.

mod conv;
mod depthwise;
mod f32_kernels;
mod gemm;
mod pool;
mod quantize;
mod residual;
