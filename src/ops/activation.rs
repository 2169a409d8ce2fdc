//! Launcher of `shaders/activation.wgsl`: ReLU / ReLU6 / PACT clip forward and backward (with
//! PACT's dα as a deterministic two-stage reduction) and the f32 add. Spec:
//! `src/reference/activation.rs`.
//!
//! Tensors: `GpuF32Tensor` (NHWC, channels padded to 4, padding 0; padding lanes written 0).
//! PACT's α is a 1-element `GpuBuffer<f32>` (a trained parameter the optimizer updates on the
//! GPU); dα a 1-element buffer, overwritten or accumulated (α shared by several consumers,
//! F8NET.md §2.5). Outputs must be buffers other than the inputs.
//! `add_f32`'s backward is the identity to both addends: no kernel; accumulate gradients of a
//! tensor with two consumers with `record_add` (`dx_total = dx1 + dx2`).

use super::conv_f32::check_tensor;
use super::gemm_f32::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Encoder, Gpu, GpuBuffer, Kernel};
use crate::tensor::GpuF32Tensor;

/// Uniforms of activation.wgsl (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ActivationParams {
    pub words: u32,
    pub c4: u32,
    pub c: u32,
    pub kind: u32,
    pub groups: u32,
    pub accumulate: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// vec4 words per workgroup (256 invocations × 4 words).
const WORDS_PER_GROUP: usize = 1024;

/// The activation of a GPU training kernel; PACT's α is read from a buffer on the GPU.
#[derive(Clone, Copy)]
pub enum GpuActivation<'a> {
    Relu,
    Relu6,
    /// PACT clip at `|alpha[0]|`.
    Pact {
        alpha: &'a GpuBuffer<f32>,
    },
}

impl GpuActivation<'_> {
    fn kind(&self) -> u32 {
        match self {
            GpuActivation::Relu => 0,
            GpuActivation::Relu6 => 1,
            GpuActivation::Pact { .. } => 2,
        }
    }

    /// The α binding: PACT's buffer, else `fallback` (any read-only buffer, never used).
    fn alpha<'b>(
        &'b self,
        op: &'static str,
        fallback: &'b GpuBuffer<f32>,
    ) -> Result<&'b GpuBuffer<f32>> {
        match self {
            GpuActivation::Pact { alpha } if alpha.len() != 1 => Err(Error::shape(
                op,
                format!("α buffer has {} values, expected 1", alpha.len()),
            )),
            GpuActivation::Pact { alpha } => Ok(alpha),
            _ => Ok(fallback),
        }
    }
}

/// Elementwise plan: (words, params, dispatch grid, workgroups with work).
fn plan(
    gpu: &Gpu,
    op: &'static str,
    t: &GpuF32Tensor,
) -> Result<(ActivationParams, [u32; 3], usize)> {
    let s = t.shape;
    let words = s.pixels() * s.c4();
    let groups = words.div_ceil(WORDS_PER_GROUP);
    let params = ActivationParams {
        words: to_u32(op, words)?,
        c4: to_u32(op, s.c4())?,
        c: to_u32(op, s.c)?,
        groups: to_u32(op, groups)?,
        ..ActivationParams::default()
    };
    let grid = match groups {
        0 => [0, 0, 0],
        g => grid_1d(g as u32, gpu.max_workgroups_per_dim()),
    };
    Ok((params, grid, groups))
}

/// Same shape; `distinct`: not the same buffer (one of them is written).
fn check_pair(
    op: &'static str,
    names: [&str; 2],
    a: &GpuF32Tensor,
    b: &GpuF32Tensor,
    distinct: bool,
) -> Result<()> {
    check_tensor(op, names[0], a)?;
    check_tensor(op, names[1], b)?;
    if a.shape != b.shape {
        return Err(Error::shape(
            op,
            format!("{} is {}, {} is {}", names[0], a.shape, names[1], b.shape),
        ));
    }
    if distinct && std::ptr::eq(&a.data, &b.data) {
        return Err(Error::shape(
            op,
            format!(
                "{} and {} are the same buffer (not in place)",
                names[0], names[1]
            ),
        ));
    }
    Ok(())
}

/// `out = act(x)`.
pub struct ActivationForward<'a> {
    pub x: &'a GpuF32Tensor,
    pub activation: GpuActivation<'a>,
    pub out: &'a GpuF32Tensor,
}

/// Record one activation forward into `enc`.
pub fn record_forward(gpu: &Gpu, enc: &mut Encoder, a: &ActivationForward<'_>) -> Result<()> {
    let op = "activation_forward";
    check_pair(op, ["x", "out"], a.x, a.out, true)?;
    let alpha = a.activation.alpha(op, &a.x.data)?;
    let (mut params, grid, _) = plan(gpu, op, a.x)?;
    params.kind = a.activation.kind();
    enc.dispatch(
        gpu,
        Kernel::ActivationForward,
        &[a.x.data.bind(), alpha.bind(), a.out.data.bind()],
        &params,
        grid,
    )
}

/// `dx = dy·mask(x)`; for PACT also `dalpha (+)= sign(α)·Σ dy over x ≥ |α|`.
pub struct ActivationBackward<'a> {
    pub dy: &'a GpuF32Tensor,
    /// The forward's input.
    pub x: &'a GpuF32Tensor,
    pub activation: GpuActivation<'a>,
    pub dx: &'a GpuF32Tensor,
    /// PACT's gradient (1 value); required for PACT, ignored otherwise.
    pub dalpha: Option<&'a GpuBuffer<f32>>,
    /// Add to `dalpha` instead of overwriting it (α shared by several consumers).
    pub accumulate: bool,
}

/// Record one activation backward into `enc` (two dispatches for PACT, one otherwise).
pub fn record_backward(gpu: &Gpu, enc: &mut Encoder, a: &ActivationBackward<'_>) -> Result<()> {
    let op = "activation_backward";
    check_pair(op, ["dy", "x"], a.dy, a.x, false)?;
    check_pair(op, ["dy", "dx"], a.dy, a.dx, true)?;
    check_pair(op, ["x", "dx"], a.x, a.dx, true)?;
    let alpha = a.activation.alpha(op, &a.x.data)?;
    let dalpha = match (a.activation, a.dalpha) {
        (GpuActivation::Pact { .. }, None) => {
            return Err(Error::shape(op, "PACT needs a dα buffer"));
        }
        (GpuActivation::Pact { alpha }, Some(d)) if d.len() != 1 || std::ptr::eq(alpha, d) => {
            return Err(Error::shape(
                op,
                format!(
                    "dα buffer has {} values (expected 1, not α's buffer)",
                    d.len()
                ),
            ));
        }
        (_, d) => d,
    };
    let (mut params, grid, groups) = plan(gpu, op, a.x)?;
    params.kind = a.activation.kind();
    params.accumulate = a.accumulate as u32;
    let partial = gpu.alloc::<f32>(groups.max(1))?;
    enc.dispatch(
        gpu,
        Kernel::ActivationBackward,
        &[
            a.dy.data.bind(),
            a.x.data.bind(),
            alpha.bind(),
            a.dx.data.bind(),
            partial.bind(),
        ],
        &params,
        grid,
    )?;
    match (a.activation, dalpha) {
        (GpuActivation::Pact { .. }, Some(d)) => enc.dispatch(
            gpu,
            Kernel::ActivationAlphaReduce,
            &[partial.bind(), d.bind()],
            &params,
            [1, 1, 1],
        ),
        _ => Ok(()),
    }
}

/// `out = a + b` (residual add; gradient accumulation).
pub struct AddF32<'a> {
    pub a: &'a GpuF32Tensor,
    pub b: &'a GpuF32Tensor,
    pub out: &'a GpuF32Tensor,
}

/// Record one add into `enc`.
pub fn record_add(gpu: &Gpu, enc: &mut Encoder, a: &AddF32<'_>) -> Result<()> {
    let op = "add_f32";
    check_pair(op, ["a", "b"], a.a, a.b, false)?;
    check_pair(op, ["a", "out"], a.a, a.out, true)?;
    check_pair(op, ["b", "out"], a.b, a.out, true)?;
    let (params, grid, _) = plan(gpu, op, a.a)?;
    enc.dispatch(
        gpu,
        Kernel::AddF32,
        &[a.a.data.bind(), a.b.data.bind(), a.out.data.bind()],
        &params,
        grid,
    )
}
