//! GPU kernels against the CPU reference, bit for bit for integer kernels.

mod conv;
mod depthwise;
mod f32_depthwise;
mod f32_kernels;
mod gemm;
mod pool;
mod quantize;
mod residual;
mod train_activation;
mod train_batchnorm;
mod train_conv;
mod train_fake_quant_rows;
mod train_loss_optim;
mod train_pool;
