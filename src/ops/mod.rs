//! GPU launchers, one file per shader. Each `record` validates shapes and ranges, then records
//! dispatches into the caller's `Encoder`; nothing here submits or reads back.
//! Shared here: packed weights and the fused epilogue of conv/linear/depthwise kernels.

pub mod activation;
pub mod batchnorm;
pub mod ceiling;
pub mod conv;
pub mod conv_f32;
pub mod depthwise;
pub mod depthwise_f32;
pub mod fake_quant;
pub mod fake_quant_rows;
pub mod fold;
pub mod gemm;
pub mod gemm_f32;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod pool_f32;
pub mod quantize;
pub mod residual;
pub mod sum_pool;

use crate::error::{Error, Result};
use crate::fixed::Signedness;
use crate::gpu::{Gpu, GpuBuffer};
use crate::reference::{check_reduction, EpilogueSpec, OutputKind};

/// Epilogue uniforms shared by gemm, conv and depthwise params.
pub(crate) fn output_words(output: OutputKind) -> (u32, u32) {
    match output {
        OutputKind::Codes(Signedness::Signed) => (0, 1),
        OutputKind::Codes(Signedness::Unsigned) => (0, 0),
        OutputKind::Int32 => (1, 0),
    }
}

/// The XOR applied to input words: uint8 codes become exact int8 `x − 128`.
pub(crate) fn input_xor(signedness: Signedness) -> u32 {
    match signedness {
        Signedness::Signed => 0,
        Signedness::Unsigned => 0x8080_8080,
    }
}

/// A layer's epilogue on the GPU: bias and shift per output channel (padded to a multiple of 4
/// with zeros), the output kind and the extra clamp.
pub struct Epilogue {
    pub n: usize,
    pub bias: GpuBuffer<i32>,
    pub shift: GpuBuffer<i32>,
    pub output: OutputKind,
    pub clamp_lo: i32,
    pub clamp_hi: i32,
}

impl Epilogue {
    pub fn upload(gpu: &Gpu, spec: &EpilogueSpec, n: usize) -> Result<Epilogue> {
        spec.validate("epilogue", n)?;
        let np = n.div_ceil(4) * 4;
        let mut bias = spec.bias.clone();
        let mut shift = spec.shift.clone();
        bias.resize(np, 0);
        shift.resize(np, 0);
        Ok(Epilogue {
            n,
            bias: gpu.upload(&bias)?,
            shift: gpu.upload(&shift)?,
            output: spec.output,
            clamp_lo: spec.clamp_lo,
            clamp_hi: spec.clamp_hi,
        })
    }
}

/// int8 weights in OHWI order, packed for the GPU: `[n][kh][kw][ceil(cin/4)]` words (input
/// channels padded with zero codes), plus `Σ w` per output channel for the uint8 correction.
/// A linear layer is `kh = kw = 1`.
pub struct PackedWeights {
    pub n: usize,
    pub kh: usize,
    pub kw: usize,
    pub cin: usize,
    pub w: GpuBuffer<u32>,
    pub wsum: GpuBuffer<i32>,
}

impl PackedWeights {
    /// `codes`: OHWI int8 codes (−127..=127), `n · kh · kw · cin` of them.
    pub fn upload(
        gpu: &Gpu,
        codes: &[i32],
        n: usize,
        kh: usize,
        kw: usize,
        cin: usize,
    ) -> Result<PackedWeights> {
        if codes.len() != n * kh * kw * cin || n == 0 || kh == 0 || kw == 0 || cin == 0 {
            return Err(Error::shape(
                "weights",
                format!("{} codes for OHWI [{n}, {kh}, {kw}, {cin}]", codes.len()),
            ));
        }
        if let Some(bad) = codes.iter().find(|&&q| !(-127..=127).contains(&q)) {
            return Err(Error::range(
                "weights",
                format!("weight code {bad} outside -127..=127"),
            ));
        }
        check_reduction("weights", kh * kw * cin)?;
        let words = crate::tensor::pack_codes(codes, cin);
        let np = n.div_ceil(4) * 4;
        let per = kh * kw * cin;
        let mut wsum: Vec<i32> = (0..n)
            .map(|o| codes[o * per..(o + 1) * per].iter().sum())
            .collect();
        wsum.resize(np, 0);
        // Pad output channels to a multiple of 4 with zero weights.
        let mut w = words;
        w.resize(np * kh * kw * cin.div_ceil(4), 0);
        Ok(PackedWeights {
            n,
            kh,
            kw,
            cin,
            w: gpu.upload(&w)?,
            wsum: gpu.upload(&wsum)?,
        })
    }

    /// Words per output channel (the GEMM's K4).
    pub fn k4(&self) -> usize {
        self.kh * self.kw * self.cin.div_ceil(4)
    }
}

/// Check a window against a layer's kernel size and the input's channels against the layer's,
/// then return the output height and width (errors name `op` and the shapes).
pub(crate) fn window_out_hw(
    op: &'static str,
    input: crate::tensor::Shape,
    kernel: (usize, usize),
    channels: usize,
    window: &crate::reference::Window,
) -> Result<(usize, usize)> {
    if (window.kh, window.kw) != kernel {
        return Err(Error::shape(
            op,
            format!(
                "window is {}x{}, weights are {}x{}",
                window.kh, window.kw, kernel.0, kernel.1
            ),
        ));
    }
    if input.c != channels {
        return Err(Error::shape(
            op,
            format!(
                "input {input} has {} channels, weights expect {channels}",
                input.c
            ),
        ));
    }
    window.out_hw(op, input.h, input.w)
}
