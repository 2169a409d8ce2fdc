//! Tensors on the host and on the GPU.
//!
//! Layout everywhere: NHWC. On the GPU channels are padded to a multiple of 4: 8-bit tensors hold
//! `c4 = ceil(c/4)` words per pixel (four codes per `u32`, lane 0 in the low byte, padding lanes 0);
//! int32 and f32 tensors hold `4·c4` values per pixel (padding values 0).
//! Host tensors (`QTensor`, the CPU reference's) hold logical channels, no padding.

use crate::error::{Error, Result};
use crate::fixed::{Format, Signedness};
use crate::gpu::{Gpu, GpuBuffer};

/// An NHWC shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn new(n: usize, h: usize, w: usize, c: usize) -> Shape {
        Shape { n, h, w, c }
    }
    /// A [rows][c] matrix as an NHWC tensor with h = w = 1.
    pub fn matrix(rows: usize, c: usize) -> Shape {
        Shape {
            n: rows,
            h: 1,
            w: 1,
            c,
        }
    }
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }
    pub fn len(&self) -> usize {
        self.pixels() * self.c
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Words per pixel of a packed 8-bit tensor.
    pub fn c4(&self) -> usize {
        self.c.div_ceil(4)
    }
    /// Channels per pixel of a padded int32/f32 GPU tensor.
    pub fn c_padded(&self) -> usize {
        self.c4() * 4
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}, {}]", self.n, self.h, self.w, self.c)
    }
}

/// A host 8-bit fixed-point tensor: codes (as i32) in NHWC with logical channels.
#[derive(Clone, Debug, PartialEq)]
pub struct QTensor {
    pub shape: Shape,
    pub format: Format,
    pub codes: Vec<i32>,
}

impl QTensor {
    pub fn new(shape: Shape, format: Format, codes: Vec<i32>) -> Result<QTensor> {
        if codes.len() != shape.len() {
            return Err(Error::shape(
                "qtensor",
                format!("{} codes for shape {shape}", codes.len()),
            ));
        }
        if let Some(bad) = codes.iter().find(|&&q| format.saturate(q) != q) {
            return Err(Error::range(
                "qtensor",
                format!("code {bad} outside the range of {format:?}"),
            ));
        }
        Ok(QTensor {
            shape,
            format,
            codes,
        })
    }
}

/// Pack NHWC codes with `c` logical channels into words, padding channels to a multiple of 4.
pub fn pack_codes(codes: &[i32], c: usize) -> Vec<u32> {
    let c4 = c.div_ceil(4);
    let pixels = codes.len().checked_div(c).unwrap_or(0);
    let mut out = vec![0u32; pixels * c4];
    for p in 0..pixels {
        for ch in 0..c {
            let byte = (codes[p * c + ch] as u32) & 0xff;
            out[p * c4 + ch / 4] |= byte << (8 * (ch % 4));
        }
    }
    out
}

/// Unpack words into NHWC codes with `c` logical channels (padding lanes dropped).
pub fn unpack_codes(words: &[u32], c: usize, signedness: Signedness) -> Vec<i32> {
    let c4 = c.div_ceil(4);
    let pixels = words.len().checked_div(c4).unwrap_or(0);
    let mut out = Vec::with_capacity(pixels * c);
    for p in 0..pixels {
        for ch in 0..c {
            let byte = (words[p * c4 + ch / 4] >> (8 * (ch % 4))) & 0xff;
            out.push(match signedness {
                Signedness::Signed => byte as u8 as i8 as i32,
                Signedness::Unsigned => byte as i32,
            });
        }
    }
    out
}

/// Pad NHWC values with `c` channels to `4·ceil(c/4)` channels per pixel (zeros).
pub fn pad_channels<T: Copy + Default>(values: &[T], c: usize) -> Vec<T> {
    let cp = c.div_ceil(4) * 4;
    let pixels = values.len().checked_div(c).unwrap_or(0);
    let mut out = vec![T::default(); pixels * cp];
    for p in 0..pixels {
        out[p * cp..p * cp + c].copy_from_slice(&values[p * c..p * c + c]);
    }
    out
}

/// Drop the padding channels of NHWC values stored with `4·ceil(c/4)` channels per pixel.
pub fn unpad_channels<T: Copy>(values: &[T], c: usize) -> Vec<T> {
    let cp = c.div_ceil(4) * 4;
    let pixels = values.len().checked_div(cp).unwrap_or(0);
    let mut out = Vec::with_capacity(pixels * c);
    for p in 0..pixels {
        out.extend_from_slice(&values[p * cp..p * cp + c]);
    }
    out
}

/// A packed 8-bit tensor on the GPU.
pub struct GpuQTensor {
    pub shape: Shape,
    pub format: Format,
    pub data: GpuBuffer<u32>,
}

impl GpuQTensor {
    pub fn upload(gpu: &Gpu, t: &QTensor) -> Result<GpuQTensor> {
        Ok(GpuQTensor {
            shape: t.shape,
            format: t.format,
            data: gpu.upload(&pack_codes(&t.codes, t.shape.c))?,
        })
    }

    /// A new tensor with every word set to `fill` (tests poison outputs with it).
    pub fn alloc_filled(gpu: &Gpu, shape: Shape, format: Format, fill: u32) -> Result<GpuQTensor> {
        Ok(GpuQTensor {
            shape,
            format,
            data: gpu.alloc_filled(shape.pixels() * shape.c4(), fill)?,
        })
    }

    pub fn download(&self, gpu: &Gpu) -> Result<QTensor> {
        let words = gpu.read(&self.data)?;
        Ok(QTensor {
            shape: self.shape,
            format: self.format,
            codes: unpack_codes(&words, self.shape.c, self.format.signedness),
        })
    }
}

/// An int32 tensor on the GPU (accumulators, residual streams) with its FL.
pub struct GpuI32Tensor {
    pub shape: Shape,
    pub fl: i32,
    pub data: GpuBuffer<i32>,
}

impl GpuI32Tensor {
    pub fn upload(gpu: &Gpu, shape: Shape, fl: i32, values: &[i32]) -> Result<GpuI32Tensor> {
        if values.len() != shape.len() {
            return Err(Error::shape(
                "i32 tensor",
                format!("{} values for {shape}", values.len()),
            ));
        }
        Ok(GpuI32Tensor {
            shape,
            fl,
            data: gpu.upload(&pad_channels(values, shape.c))?,
        })
    }

    pub fn alloc_filled(gpu: &Gpu, shape: Shape, fl: i32, fill: i32) -> Result<GpuI32Tensor> {
        Ok(GpuI32Tensor {
            shape,
            fl,
            data: gpu.alloc_filled(shape.pixels() * shape.c_padded(), fill)?,
        })
    }

    /// Values with logical channels (padding dropped).
    pub fn download(&self, gpu: &Gpu) -> Result<Vec<i32>> {
        Ok(unpad_channels(&gpu.read(&self.data)?, self.shape.c))
    }

    /// Values including padding channels (tests check padding stays 0).
    pub fn download_padded(&self, gpu: &Gpu) -> Result<Vec<i32>> {
        gpu.read(&self.data)
    }
}

/// An f32 tensor on the GPU, channels padded to a multiple of 4.
pub struct GpuF32Tensor {
    pub shape: Shape,
    pub data: GpuBuffer<f32>,
}

impl GpuF32Tensor {
    pub fn upload(gpu: &Gpu, shape: Shape, values: &[f32]) -> Result<GpuF32Tensor> {
        if values.len() != shape.len() {
            return Err(Error::shape(
                "f32 tensor",
                format!("{} values for {shape}", values.len()),
            ));
        }
        Ok(GpuF32Tensor {
            shape,
            data: gpu.upload(&pad_channels(values, shape.c))?,
        })
    }

    pub fn alloc_filled(gpu: &Gpu, shape: Shape, fill: f32) -> Result<GpuF32Tensor> {
        Ok(GpuF32Tensor {
            shape,
            data: gpu.alloc_filled(shape.pixels() * shape.c_padded(), fill)?,
        })
    }

    pub fn download(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        Ok(unpad_channels(&gpu.read(&self.data)?, self.shape.c))
    }
}
