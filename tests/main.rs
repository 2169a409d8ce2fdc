//! The single integration-test binary: every test module is listed here.

mod arch;
mod bench;
mod cli;
mod cli_train;
mod common;
mod data;
mod data_batches;
mod fixed_point;
mod fraclen;
mod kernels;
mod model_float;
mod model_int;
mod ptq;
mod quantize;
mod results;
mod shaders;
mod train_bn_stats;
mod train_conv_bn;
mod train_eval;
mod train_fp_start;
mod train_gpu;
mod train_net;
