//! Launcher of `shaders/optim.wgsl`: one SGD step (PyTorch semantics, Nesterov momentum) on one
//! parameter tensor, updating the weights and the momentum buffer in place. Spec:
//! `src/reference/optim.rs` (which also holds the weight-decay schemes and the LR schedule).
//!
//! w, grad, buf: f32 buffers of equal length in any layout (padding zeros stay zero). The
//! caller passes this tensor's decay (`WeightDecayScheme::decay`) and the iteration's LR.

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::optim::{check_sgd_lengths, SgdHyper};

/// Uniforms of optim.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdParams {
    pub len: u32,
    pub first: u32,
    pub nesterov: u32,
    pub _pad0: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub _pad1: u32,
}

/// Elements per workgroup.
const WG: usize = 256;

/// One SGD step on one tensor; `first` on the tensor's first step (the buffer is then set).
pub struct SgdStep<'a> {
    pub w: &'a GpuBuffer<f32>,
    pub grad: &'a GpuBuffer<f32>,
    pub buf: &'a GpuBuffer<f32>,
    pub first: bool,
    pub hyper: SgdHyper,
}

/// Record one SGD step into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, s: &SgdStep<'_>) -> Result<()> {
    check_sgd_lengths("sgd_step", s.w.len(), s.grad.len(), s.buf.len())?;
    let h = &s.hyper;
    if ![h.lr, h.momentum, h.weight_decay]
        .iter()
        .all(|v| v.is_finite())
    {
        return Err(Error::range(
            "sgd_step",
            format!("non-finite hyperparameter in {h:?}"),
        ));
    }
    let len = s.w.len();
    let p = SgdParams {
        len: len as u32,
        first: s.first as u32,
        nesterov: h.nesterov as u32,
        _pad0: 0,
        lr: h.lr,
        momentum: h.momentum,
        weight_decay: h.weight_decay,
        _pad1: 0,
    };
    let groups = match len {
        0 => [0, 0, 0],
        _ => grid_1d(len.div_ceil(WG) as u32, gpu.max_workgroups_per_dim()),
    };
    enc.dispatch(
        gpu,
        Kernel::SgdStep,
        &[s.grad.bind(), s.w.bind(), s.buf.bind()],
        &p,
        groups,
    )
}
