//! The single integration-test binary: every test module is listed here.

mod common;
mod fixed_point;
mod fraclen;
mod kernels;
mod model_float;
mod shaders;
