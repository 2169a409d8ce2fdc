//! Runs an integer model on the GPU: weights, biases and shifts are uploaded once
//! (`GpuModel::upload`); a forward pass allocates its activations, records every node into one
//! encoder, submits once and reads back only the int32 logits. Must equal `run_cpu` bit for bit.

use super::int::{ConvKind, IntModel, IntNode, TensorInfo, TensorType};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::{self, Conv2d};
use crate::ops::depthwise::{self, Depthwise, DepthwiseWeights};
use crate::ops::gemm::{self, Gemm, OutBuffer};
use crate::ops::pool::{self, GlobalAvgPool, MaxPool, PoolInput};
use crate::ops::quantize::{self, Requantize};
use crate::ops::residual::{self, ResidualAdd};
use crate::ops::{Epilogue, PackedWeights};
use crate::tensor::{GpuI32Tensor, GpuQTensor, Shape};

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
        let i0 = &self.info[0];
        let shape = Shape::new(n, i0.h, i0.w, i0.c);
        let x = crate::tensor::QTensor::new(shape, self.model.input_format, input.to_vec())
            .map_err(|e| Error::shape("gpu forward", format!("input: {e}")))?;
        let mut t: Vec<Tensor> = vec![Tensor::Codes(GpuQTensor::upload(gpu, &x)?)];
        let mut enc = gpu.encoder();
        for (j, node) in self.model.nodes.iter().enumerate() {
            let out = self.alloc(gpu, j + 1, n)?;
            match (node, &self.weights[j]) {
                (IntNode::Conv { input, window, .. }, NodeWeights::Dense(w, ep)) => {
                    let x = t[*input].codes("conv")?;
                    conv::record(
                        gpu,
                        &mut enc,
                        &Conv2d {
                            x: &x.data,
                            x_signedness: x.format.signedness,
                            shape: x.shape,
                            weights: w,
                            window: *window,
                            epilogue: ep,
                            out: out_buf(&out),
                        },
                    )?;
                }
                (IntNode::Conv { input, window, .. }, NodeWeights::Depthwise(w, ep)) => {
                    let x = t[*input].codes("depthwise")?;
                    depthwise::record(
                        gpu,
                        &mut enc,
                        &Depthwise {
                            x: &x.data,
                            x_signedness: x.format.signedness,
                            shape: x.shape,
                            window: *window,
                            weights: w,
                            epilogue: ep,
                            out: out_buf(&out),
                        },
                    )?;
                }
                (IntNode::Linear { input, .. }, NodeWeights::Dense(w, ep)) => {
                    let x = t[*input].codes("linear")?;
                    gemm::record(
                        gpu,
                        &mut enc,
                        &Gemm {
                            x: &x.data,
                            x_signedness: x.format.signedness,
                            m: n,
                            weights: w,
                            epilogue: ep,
                            out: out_buf(&out),
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
                        &mut enc,
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
                        &mut enc,
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
                        &mut enc,
                        &GlobalAvgPool {
                            x,
                            out: out.int32("pool")?,
                        },
                    )?;
                }
                (IntNode::MaxPool { input, window }, _) => {
                    pool::record_max_pool(
                        gpu,
                        &mut enc,
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
            t.push(out);
        }
        gpu.submit(enc)?;
        match t.last() {
            Some(Tensor::Int32(logits)) => logits.download(gpu),
            _ => Err(Error::shape(
                "gpu forward",
                "model does not end in int32 logits",
            )),
        }
    }
}
