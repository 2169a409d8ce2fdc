//! The kernel table: every WGSL source (embedded with `include_str!`, `common.wgsl` appended),
//! every entry point, and pipeline creation (checked shaders in debug builds, unchecked trusted
//! shaders in release builds, no workgroup zero-init: every kernel writes its tiles first).

use super::{Gpu, RuntimeChecks};
use crate::error::{Error, Result};

/// One WGSL file under `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Gemm,
    GemmF32,
    Conv,
    ConvF32,
    Depthwise,
    DepthwiseF32,
    Residual,
    Pool,
    Quantize,
}

macro_rules! with_common {
    ($file:literal) => {
        concat!(
            include_str!(concat!("../../shaders/", $file)),
            "\n",
            include_str!("../../shaders/common.wgsl")
        )
    };
}

impl Shader {
    pub const ALL: [Shader; 9] = [
        Shader::Gemm,
        Shader::GemmF32,
        Shader::Conv,
        Shader::ConvF32,
        Shader::Depthwise,
        Shader::DepthwiseF32,
        Shader::Residual,
        Shader::Pool,
        Shader::Quantize,
    ];

    /// File name under `shaders/`.
    pub fn file(self) -> &'static str {
        match self {
            Shader::Gemm => "gemm.wgsl",
            Shader::GemmF32 => "gemm_f32.wgsl",
            Shader::Conv => "conv.wgsl",
            Shader::ConvF32 => "conv_f32.wgsl",
            Shader::Depthwise => "depthwise.wgsl",
            Shader::DepthwiseF32 => "depthwise_f32.wgsl",
            Shader::Residual => "residual.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::Quantize => "quantize.wgsl",
        }
    }

    /// The full source: the kernel file followed by `common.wgsl`.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Gemm => with_common!("gemm.wgsl"),
            Shader::GemmF32 => with_common!("gemm_f32.wgsl"),
            Shader::Conv => with_common!("conv.wgsl"),
            Shader::ConvF32 => with_common!("conv_f32.wgsl"),
            Shader::Depthwise => with_common!("depthwise.wgsl"),
            Shader::DepthwiseF32 => with_common!("depthwise_f32.wgsl"),
            Shader::Residual => with_common!("residual.wgsl"),
            Shader::Pool => with_common!("pool.wgsl"),
            Shader::Quantize => with_common!("quantize.wgsl"),
        }
    }
}

/// One entry point: a shader and a function name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Gemm,
    GemmF32,
    Conv,
    ConvF32,
    Depthwise,
    DepthwiseF32,
    ResidualAdd,
    MaxPool,
    GlobalAvgPool,
    Quantize,
    Dequantize,
    Requantize,
}

impl Kernel {
    pub const ALL: [Kernel; 12] = [
        Kernel::Gemm,
        Kernel::GemmF32,
        Kernel::Conv,
        Kernel::ConvF32,
        Kernel::Depthwise,
        Kernel::DepthwiseF32,
        Kernel::ResidualAdd,
        Kernel::MaxPool,
        Kernel::GlobalAvgPool,
        Kernel::Quantize,
        Kernel::Dequantize,
        Kernel::Requantize,
    ];

    pub fn shader(self) -> Shader {
        match self {
            Kernel::Gemm => Shader::Gemm,
            Kernel::GemmF32 => Shader::GemmF32,
            Kernel::Conv => Shader::Conv,
            Kernel::ConvF32 => Shader::ConvF32,
            Kernel::Depthwise => Shader::Depthwise,
            Kernel::DepthwiseF32 => Shader::DepthwiseF32,
            Kernel::ResidualAdd => Shader::Residual,
            Kernel::MaxPool | Kernel::GlobalAvgPool => Shader::Pool,
            Kernel::Quantize | Kernel::Dequantize | Kernel::Requantize => Shader::Quantize,
        }
    }

    /// The WGSL entry point name.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::GemmF32 => "gemm_f32",
            Kernel::Conv => "conv",
            Kernel::ConvF32 => "conv_f32",
            Kernel::Depthwise => "depthwise",
            Kernel::DepthwiseF32 => "depthwise_f32",
            Kernel::ResidualAdd => "residual_add",
            Kernel::MaxPool => "max_pool",
            Kernel::GlobalAvgPool => "global_avg_pool",
            Kernel::Quantize => "quantize",
            Kernel::Dequantize => "dequantize",
            Kernel::Requantize => "requantize",
        }
    }
}

/// Compile one kernel's pipeline, turning validation errors into `Err`.
pub(super) fn build(gpu: &Gpu, kernel: Kernel) -> Result<wgpu::ComputePipeline> {
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(kernel.shader().file()),
        source: wgpu::ShaderSource::Wgsl(kernel.shader().source().into()),
    };
    let module = match gpu.checks {
        RuntimeChecks::On => gpu.device.create_shader_module(desc),
        // SAFETY: release builds run only kernels that the test suite checks bit for bit against
        // the CPU reference, including out-of-range rows, columns and K tails; every index is
        // guarded in the shader source.
        RuntimeChecks::Off => unsafe {
            gpu.device
                .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        },
    };
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name()),
            layout: None,
            module: &module,
            entry_point: Some(kernel.name()),
            compilation_options: wgpu::PipelineCompilationOptions {
                zero_initialize_workgroup_memory: false,
                ..Default::default()
            },
            cache: None,
        });
    if let Some(err) = pollster::block_on(scope.pop()) {
        return Err(Error::gpu(kernel.name(), err));
    }
    Ok(pipeline)
}
