//! Runs an integer model on the GPU: weights, biases and shifts are uploaded once
//! (`GpuModel::upload`); a forward pass allocates its activations, records every node into one
//! encoder, submits once and reads back only the int32 logits. Must equal `run_cpu` bit for bit.
//! Benchmarks allocate the activations once (`alloc_activations`, `write_input`) and record the
//! same forward many times (`record`) between timestamps.

use super::int::{ConvKind, IntModel, IntNode, TensorInfo, TensorType};
use crate::error::{Error, Result};
use crate::gpu::{Encoder, Gpu};
use crate::ops::conv::{self, Conv2d};
use crate::ops::depthwise::{self, Depthwise, DepthwiseWeights};
use crate::ops::gemm::{self, Gemm, OutBuffer};
use crate::ops::pool::{self, GlobalAvgPool, MaxPool, PoolInput};
use crate::ops::quantize::{self, Requantize};
use crate::ops::residual::{self, ResidualAdd};
use crate::ops::{Epilogue, PackedWeights};
use crate::tensor::{pack_codes, GpuI32Tensor, GpuQTensor, QTensor, Shape};

/// Uploaded parameters of one node.
enum NodeWeights {
    Dense(PackedWeights, Epilogue),
    Depthwise(DepthwiseWeights, Epilogue),
    None,
}

/// A model whose parameters live on the GPU.
pub struct GpuModel {
    model: IntModel,
    info: Vec<TensorInfo>,
    weights: Vec<NodeWeights>,
}

/// Every tensor of one forward pass for a batch size (tensor 0 = the input codes).
pub struct GpuActivations {
    n: usize,
    t: Vec<Tensor>,
}

impl GpuActivations {
    /// The batch size these activations hold.
    pub fn batch(&self) -> usize {
        self.n
    }
}

/// An activation on the GPU.
enum Tensor {
    Codes(GpuQTensor),
    Int32(GpuI32Tensor),
}

fn out_buf(o: &Tensor) -> OutBuffer<'_> {
    match o {
        Tensor::Codes(q) => OutBuffer::Codes(&q.data),
        Tensor::Int32(q) => OutBuffer::Int32(&q.data),
    }
}

impl Tensor {
    fn codes(&self, what: &str) -> Result<&GpuQTensor> {
        match self {
            Tensor::Codes(t) => Ok(t),
            Tensor::Int32(_) => Err(Error::shape("gpu forward", format!("{what} needs codes"))),
        }
    }
    fn int32(&self, what: &str) -> Result<&GpuI32Tensor> {
        match self {
            Tensor::Int32(t) => Ok(t),
            Tensor::Codes(_) => Err(Error::shape("gpu forward", format!("{what} needs int32"))),
        }
    }
}

impl GpuModel {
    /// Validate the model and upload its parameters.
    pub fn upload(gpu: &Gpu, model: &IntModel) -> Result<GpuModel> {
        let info = model.infer_tensors()?;
        let mut weights = Vec::with_capacity(model.nodes.len());
        for node in &model.nodes {
            weights.push(match node {
                IntNode::Conv {
                    kind: ConvKind::Dense,
                    cout,
                    cin,
                    window,
                    layer,
                    ..
                } => NodeWeights::Dense(
                    PackedWeights::upload(gpu, &layer.weight, *cout, window.kh, window.kw, *cin)?,
                    Epilogue::upload(gpu, &layer.ep, *cout)?,
                ),
                IntNode::Conv {
                    kind: ConvKind::Depthwise,
                    cout,
                    window,
                    layer,
                    ..
                } => NodeWeights::Depthwise(
                    DepthwiseWeights::upload(gpu, &layer.weight, *cout, window.kh, window.kw)?,
                    Epilogue::upload(gpu, &layer.ep, *cout)?,
                ),
                IntNode::Linear { n, k, layer, .. } => NodeWeights::Dense(
                    PackedWeights::upload(gpu, &layer.weight, *n, 1, 1, *k)?,
                    Epilogue::upload(gpu, &layer.ep, *n)?,
                ),
                _ => NodeWeights::None,
            });
        }
        Ok(GpuModel {
            model: model.clone(),
            info,
            weights,
        })
    }

    pub fn model(&self) -> &IntModel {
        &self.model
    }

    fn alloc(&self, gpu: &Gpu, t: usize, n: usize) -> Result<Tensor> {
        let i = &self.info[t];
        let shape = Shape::new(n, i.h, i.w, i.c);
        Ok(match i.ty {
            TensorType::Codes(f) => Tensor::Codes(GpuQTensor::alloc_filled(gpu, shape, f, 0)?),
            TensorType::Int32 { fl } => {
                Tensor::Int32(GpuI32Tensor::alloc_filled(gpu, shape, fl, 0)?)
            }
        })
    }

    /// int32 logits `[n][classes]` for a batch of input codes (NHWC, the model's input format).
    pub fn forward(&self, gpu: &Gpu, input: &[i32], n: usize) -> Result<Vec<i32>> {
        let acts = self.alloc_activations(gpu, n)?;
        self.write_input(gpu, &acts, input)?;
        let mut enc = gpu.encoder();
        self.record(gpu, &mut enc, &acts)?;
        gpu.submit(enc)?;
        self.logits(gpu, &acts)
    }

    /// Allocate every tensor of a forward pass for a batch of `n`.
    pub fn alloc_activations(&self, gpu: &Gpu, n: usize) -> Result<GpuActivations> {
        let t = (0..self.info.len())
            .map(|j| self.alloc(gpu, j, n))
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuActivations { n, t })
    }

    /// Validate input codes (NHWC, the model's input format) and queue them into `acts`.
    pub fn write_input(&self, gpu: &Gpu, acts: &GpuActivations, input: &[i32]) -> Result<()> {
        let i0 = &self.info[0];
        let shape = Shape::new(acts.n, i0.h, i0.w, i0.c);
        let x = QTensor::new(shape, self.model.input_format, input.to_vec())
            .map_err(|e| Error::shape("gpu forward", format!("input: {e}")))?;
        let dst = acts.t[0].codes("input")?;
        gpu.write(&dst.data, &pack_codes(&x.codes, shape.c))
    }

    /// The int32 logits of the last recorded and submitted forward into `acts`.
    pub fn logits(&self, gpu: &Gpu, acts: &GpuActivations) -> Result<Vec<i32>> {
        match acts.t.last() {
            Some(Tensor::Int32(logits)) => logits.download(gpu),
            _ => Err(Error::shape(
                "gpu forward",
                "model does not end in int32 logits",
            )),
        }
    }

    /// Record one forward pass over `acts` (input already written) into `enc`.
    pub fn record(&self, gpu: &Gpu, enc: &mut Encoder, acts: &GpuActivations) -> Result<()> {
        let t = &acts.t;
        if t.len() != self.info.len() {
            return Err(Error::shape("gpu forward", "activations of another model"));
        }
        for (j, node) in self.model.nodes.iter().enumerate() {
            let out = &t[j + 1];
            match (node, &self.weights[j]) {
                (IntNode::Conv { input, window, .. }, NodeWeights::Dense(w, ep)) => {
                    let x = t[*input].codes("conv")?;
                    conv::record(
                        gpu,
                        enc,
                        &Conv2d {
                            x: &x.data,
                            x_signedness: x.format.signedness,
                            shape: x.shape,
                            weights: w,
                            window: *window,
                            epilogue: ep,
                            out: out_buf(out),
                        },
                    )?;
                }
                (IntNode::Conv { input, window, .. }, NodeWeights::Depthwise(w, ep)) => {
                    let x = t[*input].codes("depthwise")?;
                    depthwise::record(
                        gpu,
                        enc,
                        &Depthwise {
                            x: &x.data,
                            x_signedness: x.format.signedness,
                            shape: x.shape,
                            window: *window,
                            weights: w,
                            epilogue: ep,
                            out: out_buf(out),
                        },
                    )?;
                }
                (IntNode::Linear { input, .. }, NodeWeights::Dense(w, ep)) => {
                    let x = t[*input].codes("linear")?;
                    gemm::record(
                        gpu,
                        enc,
                        &Gemm {
                            x: &x.data,
                            x_signedness: x.format.signedness,
                            m: acts.n,
                            weights: w,
                            epilogue: ep,
                            out: out_buf(out),
                        },
                    )?;
                }
                (
                    IntNode::Requantize {
                        input,
                        clamp_lo,
                        clamp_hi,
                        ..
                    },
                    _,
                ) => {
                    quantize::record_requantize(
                        gpu,
                        enc,
                        &Requantize {
                            x: t[*input].int32("requantize")?,
                            clamp: Some((*clamp_lo, *clamp_hi)),
                            out: out.codes("requantize")?,
                        },
                    )?;
                }
                (IntNode::Add { a, b, act }, _) => {
                    residual::record(
                        gpu,
                        enc,
                        &ResidualAdd {
                            a: t[*a].int32("add")?,
                            b: t[*b].int32("add")?,
                            activation: *act,
                            out: out.int32("add")?,
                        },
                    )?;
                }
                (IntNode::GlobalAvgPool { input, .. }, _) => {
                    let x = match &t[*input] {
                        Tensor::Codes(q) => PoolInput::Codes(q),
                        Tensor::Int32(q) => PoolInput::Int32(q),
                    };
                    pool::record_global_avg_pool(
                        gpu,
                        enc,
                        &GlobalAvgPool {
                            x,
                            out: out.int32("pool")?,
                        },
                    )?;
                }
                (IntNode::MaxPool { input, window }, _) => {
                    pool::record_max_pool(
                        gpu,
                        enc,
                        &MaxPool {
                            x: t[*input].codes("max pool")?,
                            window: *window,
                            out: out.codes("max pool")?,
                        },
                    )?;
                }
                _ => {
                    return Err(Error::shape(
                        "gpu forward",
                        format!("node {j} has no uploaded weights"),
                    ))
                }
            }
        }
        Ok(())
    }
}
