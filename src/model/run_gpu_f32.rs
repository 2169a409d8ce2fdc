//! Runs a float model (`FloatModel`) on the GPU with the f32 kernels: dense conv
//! (`ops::conv_f32`, 1×1 stride-1 as `gemm_f32`), depthwise conv (`ops::depthwise_f32`), linear
//! (`ops::gemm_f32`), residual add (`ops::activation::record_add`, plus an activation pass when
//! the add has one), global average and max pooling (`ops::pool_f32`; max pooling writes an
//! argmax buffer per pool, allocated with the activations). The f32 side of the int8 vs
//! f32 model benchmarks, and a GPU float forward; within float tolerance of `FloatModel::forward`.
//!
//! Weights are uploaded once (`GpuFloatModel::upload`). A forward pass records every node into
//! one encoder and submits once. Activations live in slots reused by tensors of the same shape
//! once their last reader has run (liveness computed once per model), so a batch needs about
//! the live set, not the sum of all tensors. A batch whose largest slot would exceed the
//! device's binding limit runs in even sub-batches inside the same encoder: the input is copied
//! in and the logits copied out per sub-batch (the last sub-batch may compute stale rows past the
//! batch end, which are never copied out).

use super::float::{Activation, ConvKind, FloatModel, FloatNode, Hwc};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu, GpuBuffer};
use crate::ops::activation::{self, ActivationForward, AddF32, GpuActivation};
use crate::ops::conv_f32::{self, ConvF32};
use crate::ops::depthwise_f32::{self, DepthwiseF32, F32DepthwiseWeights};
use crate::ops::gemm_f32::{self, F32Weights, GemmF32};
use crate::ops::pool_f32::{self, global_window, AvgPoolF32, MaxPoolF32};
use crate::reference::gemm_f32::Activation as KernelAct;
use crate::reference::Window;
use crate::tensor::{pad_channels, GpuF32Tensor, Shape};

const OP: &str = "gpu float forward";

/// One node, its uploaded parameters and the slots it reads and writes.
enum Step {
    Dense {
        input: usize,
        window: Window,
        act: Activation,
        w: F32Weights,
    },
    Depthwise {
        input: usize,
        window: Window,
        act: Activation,
        w: F32DepthwiseWeights,
    },
    Linear {
        input: usize,
        w: F32Weights,
    },
    /// `tmp`: a scratch slot when the add has an activation (kernels are not in place).
    Add {
        a: usize,
        b: usize,
        act: Activation,
        tmp: Option<usize>,
    },
    Pool {
        input: usize,
    },
    /// `argmax`: index of this pool's argmax buffer in the activations.
    MaxPool {
        input: usize,
        window: Window,
        argmax: usize,
    },
}

/// A float model whose parameters live on the GPU.
pub struct GpuFloatModel {
    name: String,
    /// `[h, w, c]` per tensor (0 = input).
    shapes: Vec<Hwc>,
    /// Node `i` writes slot `out[i]`; `steps[i]` reads slots.
    steps: Vec<Step>,
    out: Vec<usize>,
    /// Slot of the input tensor, and the per-image shape of every slot.
    input_slot: usize,
    slot_shapes: Vec<Hwc>,
    /// Most images one pass may hold (binding limit / largest slot).
    max_chunk: usize,
}

/// Buffers of forward passes over a batch of `n`.
pub struct GpuFloatActivations {
    n: usize,
    chunk: usize,
    slots: Vec<GpuF32Tensor>,
    /// One argmax buffer per max pool (written, never read: inference needs no backward).
    argmax: Vec<GpuBuffer<u32>>,
    /// Whole-batch input and logits when the batch runs in sub-batches.
    staged: Option<(GpuF32Tensor, GpuF32Tensor)>,
}

impl GpuFloatActivations {
    /// The batch size, and the images per recorded pass (`chunk < batch` when split).
    pub fn batch(&self) -> (usize, usize) {
        (self.n, self.chunk)
    }
}

fn kernel_act(a: Activation) -> KernelAct {
    match a {
        Activation::None => KernelAct::None,
        Activation::Relu => KernelAct::Relu,
        Activation::Relu6 => KernelAct::Relu6,
    }
}

/// Slot assignment: a free slot of the same shape, else a new one.
struct Slots {
    shapes: Vec<Hwc>,
    free: Vec<usize>,
}

impl Slots {
    fn take(&mut self, s: Hwc) -> usize {
        match self.free.iter().position(|&f| self.shapes[f] == s) {
            Some(p) => self.free.swap_remove(p),
            None => {
                self.shapes.push(s);
                self.shapes.len() - 1
            }
        }
    }
}

impl GpuFloatModel {
    /// Validate the graph, plan the activation slots and upload every weight.
    pub fn upload(gpu: &Gpu, model: &FloatModel) -> Result<GpuFloatModel> {
        let shapes = model.tensor_shapes()?;
        let last = shapes.len() - 1;
        let mut last_use = vec![usize::MAX; shapes.len()];
        for (i, node) in model.nodes.iter().enumerate() {
            for t in inputs(node) {
                last_use[t] = i;
            }
        }
        let mut slots = Slots {
            shapes: Vec::new(),
            free: Vec::new(),
        };
        let mut slot_of = vec![0usize; shapes.len()];
        slot_of[0] = slots.take(shapes[0]);
        let (mut steps, mut out) = (Vec::new(), Vec::new());
        for (i, node) in model.nodes.iter().enumerate() {
            let o = slots.take(shapes[i + 1]);
            slot_of[i + 1] = o;
            out.push(o);
            steps.push(match node {
                FloatNode::Conv { input, conv } => match conv.kind {
                    ConvKind::Dense => Step::Dense {
                        input: slot_of[*input],
                        window: conv.window,
                        act: conv.act,
                        w: F32Weights::upload(
                            gpu,
                            &conv.weight,
                            &conv.bias,
                            conv.cout,
                            conv.kh,
                            conv.kw,
                            conv.cin,
                        )?,
                    },
                    ConvKind::Depthwise => Step::Depthwise {
                        input: slot_of[*input],
                        window: conv.window,
                        act: conv.act,
                        w: F32DepthwiseWeights::upload(
                            gpu,
                            &conv.weight,
                            &conv.bias,
                            conv.cout,
                            conv.kh,
                            conv.kw,
                        )?,
                    },
                },
                FloatNode::Add { a, b, act } => {
                    let tmp = (*act != Activation::None).then(|| slots.take(shapes[i + 1]));
                    if let Some(t) = tmp {
                        slots.free.push(t);
                    }
                    Step::Add {
                        a: slot_of[*a],
                        b: slot_of[*b],
                        act: *act,
                        tmp,
                    }
                }
                FloatNode::GlobalAvgPool { input } => Step::Pool {
                    input: slot_of[*input],
                },
                FloatNode::MaxPool { input, window } => Step::MaxPool {
                    input: slot_of[*input],
                    window: *window,
                    argmax: steps
                        .iter()
                        .filter(|s| matches!(s, Step::MaxPool { .. }))
                        .count(),
                },
                FloatNode::Linear {
                    input,
                    name,
                    n,
                    k,
                    weight,
                    bias,
                } => {
                    let [h, w, c] = shapes[*input];
                    if h * w > 1 && c % 4 != 0 {
                        return Err(Error::shape(
                            OP,
                            format!(
                                "linear {name} reads a {h}x{w}x{c} tensor: flattening needs \
                                 channels in multiples of 4 on the GPU"
                            ),
                        ));
                    }
                    Step::Linear {
                        input: slot_of[*input],
                        w: F32Weights::upload(gpu, weight, bias, *n, 1, 1, *k)?,
                    }
                }
            });
            let mut read = inputs(node);
            read.dedup();
            for t in read {
                if last_use[t] == i && t != last && !slots.free.contains(&slot_of[t]) {
                    slots.free.push(slot_of[t]);
                }
            }
        }
        let per_image = |s: &Hwc| (s[0] * s[1] * s[2].div_ceil(4) * 4 * 4) as u64;
        let largest = slots.shapes.iter().map(per_image).max().unwrap_or(4).max(1);
        let max_chunk = (gpu.max_binding_bytes() / largest) as usize;
        if max_chunk == 0 {
            return Err(Error::TooLarge {
                op: OP,
                bytes: largest,
                limit: gpu.max_binding_bytes(),
                msg: "one image's activation does not fit one binding".into(),
            });
        }
        Ok(GpuFloatModel {
            name: model.name.clone(),
            shapes,
            steps,
            out,
            input_slot: slot_of[0],
            slot_shapes: slots.shapes,
            max_chunk,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of activation buffers a forward pass uses (after reuse).
    pub fn slot_count(&self) -> usize {
        self.slot_shapes.len()
    }

    /// Most images per recorded pass (from the binding limit).
    pub fn max_chunk(&self) -> usize {
        self.max_chunk
    }

    /// Cap the images per recorded pass below the binding limit's (to bound memory, or to test
    /// the sub-batch path); at least 1.
    pub fn set_max_chunk(&mut self, images: usize) {
        self.max_chunk = self.max_chunk.min(images.max(1));
    }

    fn shape(&self, n: usize, s: Hwc) -> Shape {
        Shape::new(n, s[0], s[1], s[2])
    }

    /// Allocate the buffers of a batch of `n` (split into sub-batches if it needs to be).
    pub fn alloc_activations(&self, gpu: &Gpu, n: usize) -> Result<GpuFloatActivations> {
        if n == 0 {
            return Err(Error::shape(OP, "batch of 0 images"));
        }
        // Even sub-batches: the last one wastes less than one image per sub-batch.
        let chunk = n.div_ceil(n.div_ceil(self.max_chunk));
        let slots = self
            .slot_shapes
            .iter()
            .map(|&s| GpuF32Tensor::alloc_filled(gpu, self.shape(chunk, s), 0.0))
            .collect::<Result<Vec<_>>>()?;
        let argmax = self
            .steps
            .iter()
            .zip(&self.out)
            .filter(|(s, _)| matches!(s, Step::MaxPool { .. }))
            .map(|(_, &o)| {
                let [h, w, c] = self.slot_shapes[o];
                gpu.alloc::<u32>(chunk * h * w * c.div_ceil(4) * 4)
            })
            .collect::<Result<Vec<_>>>()?;
        let staged = if chunk < n {
            let last = self.shapes[self.shapes.len() - 1];
            Some((
                GpuF32Tensor::alloc_filled(gpu, self.shape(n, self.shapes[0]), 0.0)?,
                GpuF32Tensor::alloc_filled(gpu, self.shape(n, last), 0.0)?,
            ))
        } else {
            None
        };
        Ok(GpuFloatActivations {
            n,
            chunk,
            slots,
            argmax,
            staged,
        })
    }

    /// Queue a batch's NHWC input (logical channels) into `acts`.
    pub fn write_input(&self, gpu: &Gpu, acts: &GpuFloatActivations, x: &[f32]) -> Result<()> {
        let [h, w, c] = self.shapes[0];
        if Some(x.len()) != acts.n.checked_mul(h * w * c) {
            return Err(Error::shape(
                OP,
                format!(
                    "{}: {} inputs for a batch of {} x {h}x{w}x{c}",
                    self.name,
                    x.len(),
                    acts.n
                ),
            ));
        }
        let dst = match &acts.staged {
            Some((input, _)) => input,
            None => &acts.slots[self.input_slot],
        };
        gpu.write(&dst.data, &pad_channels(x, c))
    }

    /// Record one forward pass over `acts` (input already written) into `enc`.
    pub fn record(&self, gpu: &Gpu, enc: &mut Encoder, acts: &GpuFloatActivations) -> Result<()> {
        if acts.slots.len() != self.slot_shapes.len() {
            return Err(Error::shape(OP, "activations of another model"));
        }
        let s = &acts.slots;
        let [h, w, c] = self.shapes[0];
        let (img_in, img_out) = (h * w * c.div_ceil(4) * 4, self.logits_stride());
        let result = self.out[self.out.len() - 1];
        for lo in (0..acts.n).step_by(acts.chunk) {
            let len = acts.chunk.min(acts.n - lo);
            if let Some((input, _)) = &acts.staged {
                let dst = &s[self.input_slot].data;
                enc.copy_range(&input.data, lo * img_in, dst, 0, len * img_in)?;
            }
            self.record_pass(gpu, enc, s, &acts.argmax)?;
            if let Some((_, logits)) = &acts.staged {
                let src = &s[result].data;
                enc.copy_range(src, 0, &logits.data, lo * img_out, len * img_out)?;
            }
        }
        Ok(())
    }

    /// Padded values per image of the output.
    fn logits_stride(&self) -> usize {
        let [h, w, c] = self.shapes[self.shapes.len() - 1];
        h * w * c.div_ceil(4) * 4
    }

    fn record_pass(
        &self,
        gpu: &Gpu,
        enc: &mut Encoder,
        s: &[GpuF32Tensor],
        argmax: &[GpuBuffer<u32>],
    ) -> Result<()> {
        for (step, &o) in self.steps.iter().zip(&self.out) {
            let out = &s[o];
            match step {
                Step::Dense {
                    input,
                    window,
                    act,
                    w,
                } => conv_f32::record(
                    gpu,
                    enc,
                    &ConvF32 {
                        input: &s[*input],
                        weights: w,
                        window: *window,
                        activation: kernel_act(*act),
                        out,
                    },
                )?,
                Step::Depthwise {
                    input,
                    window,
                    act,
                    w,
                } => depthwise_f32::record(
                    gpu,
                    enc,
                    &DepthwiseF32 {
                        input: &s[*input],
                        weights: w,
                        window: *window,
                        activation: kernel_act(*act),
                        out,
                    },
                )?,
                Step::Linear { input, w } => gemm_f32::record(
                    gpu,
                    enc,
                    &GemmF32 {
                        x: &s[*input].data,
                        m: out.shape.n,
                        weights: w,
                        activation: KernelAct::None,
                        out: &out.data,
                    },
                )?,
                Step::Add { a, b, act, tmp } => {
                    let (a, b) = (&s[*a], &s[*b]);
                    let sum = tmp.map_or(out, |t| &s[t]);
                    activation::record_add(gpu, enc, &AddF32 { a, b, out: sum })?;
                    let gact = match act {
                        Activation::None => None,
                        Activation::Relu => Some(GpuActivation::Relu),
                        Activation::Relu6 => Some(GpuActivation::Relu6),
                    };
                    if let Some(activation) = gact {
                        let f = ActivationForward {
                            x: sum,
                            activation,
                            out,
                        };
                        activation::record_forward(gpu, enc, &f)?;
                    }
                }
                Step::Pool { input } => {
                    let x = &s[*input];
                    let a = AvgPoolF32 {
                        x,
                        window: global_window(x.shape),
                        out,
                    };
                    pool_f32::record_avg_pool(gpu, enc, &a)?;
                }
                Step::MaxPool {
                    input,
                    window,
                    argmax: j,
                } => {
                    let argmax = argmax
                        .get(*j)
                        .ok_or_else(|| Error::shape(OP, "activations of another model"))?;
                    let m = MaxPoolF32 {
                        x: &s[*input],
                        window: *window,
                        out,
                        argmax,
                    };
                    pool_f32::record_max_pool(gpu, enc, &m)?;
                }
            }
        }
        Ok(())
    }

    /// The outputs `[n][out_len]` of the last recorded and submitted forward into `acts`.
    pub fn outputs(&self, gpu: &Gpu, acts: &GpuFloatActivations) -> Result<Vec<f32>> {
        let t = match &acts.staged {
            Some((_, logits)) => logits,
            None => &acts.slots[self.out[self.out.len() - 1]],
        };
        t.download(gpu)
    }

    /// Output of the last node for a batch of `n` NHWC images: `[n][out_len]`, like
    /// `FloatModel::forward`. One submission.
    pub fn forward(&self, gpu: &Gpu, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let acts = self.alloc_activations(gpu, n)?;
        self.write_input(gpu, &acts, x)?;
        let mut enc = gpu.encoder();
        self.record(gpu, &mut enc, &acts)?;
        gpu.submit(enc)?;
        self.outputs(gpu, &acts)
    }
}

fn inputs(node: &FloatNode) -> Vec<usize> {
    match node {
        FloatNode::Conv { input, .. }
        | FloatNode::GlobalAvgPool { input }
        | FloatNode::MaxPool { input, .. }
        | FloatNode::Linear { input, .. } => vec![*input],
        FloatNode::Add { a, b, .. } => vec![*a, *b],
    }
}
