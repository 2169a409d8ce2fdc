//! Launcher of `shaders/loss.wgsl`: fused softmax cross-entropy (mean loss and dlogits in one
//! pass). Spec: `src/reference/loss.rs`.
//!
//! logits and dlogits: `GpuF32Tensor` of shape `[n, 1, 1, k]` (rows padded to 4·ceil(k/4); the
//! dlogits padding is written 0); labels: u32 `[n]`; partials: f32 `[2·loss_groups(n)]`, per
//! workgroup the sum of its row losses and its count of out-of-range labels. `read_loss` sums the
//! partials in f64 into the mean loss (a few floats of readback) and turns a bad label into `Err`.

use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer, Kernel};
use crate::reference::loss::check_loss_shapes;
use crate::tensor::GpuF32Tensor;

/// Uniforms of loss.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossParams {
    pub n: u32,
    pub k: u32,
    pub k4: u32,
    pub rows_per_group: u32,
    pub inv_n: f32,
    pub _pad: [u32; 3],
}

/// Most workgroups of one loss dispatch (so the partials stay a few floats).
const MAX_GROUPS: usize = 64;

fn rows_per_group(n: usize) -> usize {
    n.div_ceil(MAX_GROUPS).max(1)
}

/// Workgroups (and partial records) of a batch of `n` rows.
pub fn loss_groups(n: usize) -> usize {
    n.div_ceil(rows_per_group(n))
}

/// Length of the partials buffer for a batch of `n` rows.
pub fn partials_len(n: usize) -> usize {
    2 * loss_groups(n)
}

/// One fused softmax cross-entropy over `logits` `[n, 1, 1, k]`.
pub struct SoftmaxCrossEntropy<'a> {
    pub logits: &'a GpuF32Tensor,
    pub labels: &'a GpuBuffer<u32>,
    pub dlogits: &'a GpuF32Tensor,
    pub partials: &'a GpuBuffer<f32>,
}

/// Record the loss and its gradient into `enc`.
pub fn record(gpu: &Gpu, enc: &mut Encoder, a: &SoftmaxCrossEntropy<'_>) -> Result<()> {
    const OP: &str = "softmax_cross_entropy";
    let s = a.logits.shape;
    if s.h != 1 || s.w != 1 {
        return Err(Error::shape(OP, format!("logits {s} must be [n, 1, 1, k]")));
    }
    let (n, k) = (s.n, s.c);
    check_loss_shapes(OP, n, k, a.labels.len())?;
    if a.dlogits.shape != s {
        return Err(Error::shape(
            OP,
            format!("logits are {s}, dlogits are {}", a.dlogits.shape),
        ));
    }
    let words = n * s.c4();
    if a.logits.data.len() != words * 4 || a.dlogits.data.len() != words * 4 {
        return Err(Error::shape(
            OP,
            format!(
                "logits and dlogits buffers hold {} and {} values, expected {} for {s}",
                a.logits.data.len(),
                a.dlogits.data.len(),
                words * 4
            ),
        ));
    }
    if a.partials.len() != partials_len(n) {
        return Err(Error::shape(
            OP,
            format!(
                "partials hold {} values, expected {} for {n} rows",
                a.partials.len(),
                partials_len(n)
            ),
        ));
    }
    let p = LossParams {
        n: n as u32,
        k: k as u32,
        k4: s.c4() as u32,
        rows_per_group: rows_per_group(n) as u32,
        inv_n: 1.0 / n as f32,
        _pad: [0; 3],
    };
    let binds = [
        a.logits.data.bind(),
        a.labels.bind(),
        a.dlogits.data.bind(),
        a.partials.bind(),
    ];
    enc.dispatch(
        gpu,
        Kernel::SoftmaxCrossEntropy,
        &binds,
        &p,
        [loss_groups(n) as u32, 1, 1],
    )
}

/// The mean loss from partials read back on the host (`n` rows); a bad label is an error.
pub fn loss_from_partials(partials: &[f32], n: usize) -> Result<f32> {
    if partials.len() != partials_len(n) {
        return Err(Error::shape(
            "softmax_cross_entropy",
            format!("{} partials for {n} rows", partials.len()),
        ));
    }
    let bad: f64 = partials.iter().skip(1).step_by(2).map(|&b| b as f64).sum();
    if bad != 0.0 {
        return Err(Error::range(
            "softmax_cross_entropy",
            format!("{bad} of {n} labels are out of range of the logits' classes"),
        ));
    }
    let sum: f64 = partials.iter().step_by(2).map(|&l| l as f64).sum();
    Ok((sum / n as f64) as f32)
}

/// Read the partials back (waits for submitted work) and return the mean loss.
pub fn read_loss(gpu: &Gpu, partials: &GpuBuffer<f32>, n: usize) -> Result<f32> {
    loss_from_partials(&gpu.read(partials)?, n)
}
