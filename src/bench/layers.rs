//! Kernel benchmarks at real layer shapes: the int8 conv (implicit GEMM; 1×1 convs and the
//! classifier run as GEMMs) and depthwise kernels next to the same work in the f32 kernels of the
//! same tiling. Layer shapes are ResNet-18 and MobileNet-V2 (ImageNet, 224×224 input).
//! Napkin math: dp4a does 4 MACs per instruction, so on hardware with native dp4a the int8
//! kernels have up to 4× the MAC rate of the f32 FMA kernels, and move ¼ of the bytes.

use super::timing::Recorder;
use crate::error::Result;
use crate::fixed::Signedness;
use crate::gpu::{Encoder, Gpu};
use crate::ops::conv::{self, Conv2d};
use crate::ops::conv_f32::{self, ConvF32};
use crate::ops::depthwise::{self, Depthwise, DepthwiseWeights};
use crate::ops::depthwise_f32::{self, DepthwiseF32, F32DepthwiseWeights};
use crate::ops::gemm::OutBuffer;
use crate::ops::gemm_f32::F32Weights;
use crate::ops::{Epilogue, PackedWeights};
use crate::reference::gemm_f32::Activation;
use crate::reference::{EpilogueSpec, OutputKind, Window};
use crate::tensor::{GpuF32Tensor, Shape};
use serde::Serialize;

/// Dense convolution (GEMM when 1×1) or depthwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Conv,
    Depthwise,
}

/// One layer shape from a real network (square input `hw`, square kernel `k`, padding k/2).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Layer {
    pub name: &'static str,
    pub op: Op,
    pub hw: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
}

const fn layer(
    name: &'static str,
    op: Op,
    hw: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
) -> Layer {
    Layer {
        name,
        op,
        hw,
        cin,
        cout,
        k,
        stride,
    }
}

/// The benchmarked layers: (name, op, input side, cin, cout, kernel, stride).
#[rustfmt::skip]
pub const LAYERS: &[Layer] = &[
    layer("resnet18.layer1.conv 3x3 64->64 @56", Op::Conv, 56, 64, 64, 3, 1),
    layer("resnet18.layer2.conv 3x3 128->128 @28", Op::Conv, 28, 128, 128, 3, 1),
    layer("resnet18.layer3.conv 3x3 256->256 @14", Op::Conv, 14, 256, 256, 3, 1),
    layer("resnet18.layer4.conv 3x3 512->512 @7", Op::Conv, 7, 512, 512, 3, 1),
    layer("resnet18.layer2.downsample 1x1/2 64->128 @56", Op::Conv, 56, 64, 128, 1, 2),
    layer("resnet18.fc 512->1000 (gemm)", Op::Conv, 1, 512, 1000, 1, 1),
    layer("mbv2.block2.expand 1x1 24->144 @56 (gemm)", Op::Conv, 56, 24, 144, 1, 1),
    layer("mbv2.block2.project 1x1 144->24 @56 (gemm)", Op::Conv, 56, 144, 24, 1, 1),
    layer("mbv2.block2.dw 3x3 144 @56", Op::Depthwise, 56, 144, 144, 3, 1),
    layer("mbv2.block3.dw 3x3/2 144 @56", Op::Depthwise, 56, 144, 144, 3, 2),
    layer("mbv2.block16.dw 3x3 960 @7", Op::Depthwise, 7, 960, 960, 3, 1),
];

impl Layer {
    pub fn window(&self) -> Window {
        Window::symmetric(self.k, self.stride, self.k / 2)
    }

    fn out_hw(&self) -> (usize, usize) {
        self.window()
            .out_hw("bench", self.hw, self.hw)
            .unwrap_or((0, 0))
    }

    /// Multiply-accumulates of one run at `batch`.
    pub fn macs(&self, batch: usize) -> u64 {
        let (oh, ow) = self.out_hw();
        let per_out = match self.op {
            Op::Conv => self.k * self.k * self.cin,
            Op::Depthwise => self.k * self.k,
        };
        (batch * oh * ow * self.cout * per_out) as u64
    }

    /// Least bytes one run must move (input and weights read once, output written once) with
    /// `elem` bytes per value: 1 for int8 codes, 4 for f32.
    pub fn bytes(&self, batch: usize, elem: usize) -> u64 {
        let (oh, ow) = self.out_hw();
        let pad4 = |c: usize| c.div_ceil(4) * 4;
        let input = batch * self.hw * self.hw * pad4(self.cin);
        let output = batch * oh * ow * pad4(self.cout);
        let weights = match self.op {
            Op::Conv => pad4(self.cout) * self.k * self.k * pad4(self.cin),
            Op::Depthwise => self.k * self.k * pad4(self.cout),
        };
        ((input + output + weights) * elem) as u64
    }
}

/// Deterministic values in lo..=hi (xorshift).
fn values(len: usize, seed: u32, lo: i32, hi: i32) -> Vec<i32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            lo + (s % (hi - lo + 1) as u32) as i32
        })
        .collect()
}

/// Recorders of the int8 and the f32 version of layer `l` at `batch` (buffers uploaded now).
pub fn recorders<'a>(
    gpu: &'a Gpu,
    l: &Layer,
    batch: usize,
) -> Result<(Recorder<'a>, Recorder<'a>)> {
    let shape = Shape::new(batch, l.hw, l.hw, l.cin);
    let win = l.window();
    let (oh, ow) = win.out_hw("bench", l.hw, l.hw)?;
    let out_shape = Shape::new(batch, oh, ow, l.cout);
    let x8 = gpu.upload(&vec![0x4080_20ffu32; shape.pixels() * shape.c4()])?;
    let out8 = gpu.alloc::<u32>(out_shape.pixels() * out_shape.c4())?;
    let spec = EpilogueSpec::plain(l.cout, 9, OutputKind::Codes(Signedness::Unsigned));
    let ep = Epilogue::upload(gpu, &spec, l.cout)?;
    let x32 = GpuF32Tensor::upload(gpu, shape, &vec![0.25; shape.len()])?;
    let out32 = GpuF32Tensor::alloc_filled(gpu, out_shape, 0.0)?;
    let per = match l.op {
        Op::Conv => l.k * l.k * l.cin,
        Op::Depthwise => l.k * l.k,
    };
    let codes = values(l.cout * per, 7, -127, 127);
    let wf: Vec<f32> = codes.iter().map(|&v| v as f32 / 128.0).collect();
    let bias = vec![0.0; l.cout];
    Ok(match l.op {
        Op::Conv => {
            let w8 = PackedWeights::upload(gpu, &codes, l.cout, l.k, l.k, l.cin)?;
            let w32 = F32Weights::upload(gpu, &wf, &bias, l.cout, l.k, l.k, l.cin)?;
            let int8 = move |enc: &mut Encoder| {
                let c = Conv2d {
                    x: &x8,
                    x_signedness: Signedness::Unsigned,
                    shape,
                    weights: &w8,
                    window: win,
                    epilogue: &ep,
                    out: OutBuffer::Codes(&out8),
                };
                conv::record(gpu, enc, &c)
            };
            let f32 = move |enc: &mut Encoder| {
                let c = ConvF32 {
                    input: &x32,
                    weights: &w32,
                    window: win,
                    activation: Activation::Relu,
                    out: &out32,
                };
                conv_f32::record(gpu, enc, &c)
            };
            (Box::new(int8), Box::new(f32))
        }
        Op::Depthwise => {
            let w8 = DepthwiseWeights::upload(gpu, &codes, l.cout, l.k, l.k)?;
            let w32 = F32DepthwiseWeights::upload(gpu, &wf, &bias, l.cout, l.k, l.k)?;
            let int8 = move |enc: &mut Encoder| {
                let d = Depthwise {
                    x: &x8,
                    x_signedness: Signedness::Unsigned,
                    shape,
                    window: win,
                    weights: &w8,
                    epilogue: &ep,
                    out: OutBuffer::Codes(&out8),
                };
                depthwise::record(gpu, enc, &d)
            };
            let f32 = move |enc: &mut Encoder| {
                let d = DepthwiseF32 {
                    input: &x32,
                    weights: &w32,
                    window: win,
                    activation: Activation::Relu,
                    out: &out32,
                };
                depthwise_f32::record(gpu, enc, &d)
            };
            (Box::new(int8), Box::new(f32))
        }
    })
}
