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
    Batchnorm,
    Activation,
    PoolF32,
    Loss,
    Optim,
    FakeQuant,
    FakeQuantRows,
    Fold,
    FoldLinear,
    SumPool,
    Ceiling,
}

/// A kernel file followed by the dp4a tile core and `common.wgsl` (gemm and conv).
macro_rules! with_tile {
    ($file:literal) => {
        concat!(
            include_str!(concat!("../../shaders/", $file)),
            "\n",
            include_str!("../../shaders/dp4a_tile.wgsl"),
            "\n",
            include_str!("../../shaders/common.wgsl")
        )
    };
}

/// A kernel file followed by the f32 tile core and `common.wgsl` (gemm_f32 and conv_f32).
macro_rules! with_f32_tile {
    ($file:literal) => {
        concat!(
            include_str!(concat!("../../shaders/", $file)),
            "\n",
            include_str!("../../shaders/f32_tile.wgsl"),
            "\n",
            include_str!("../../shaders/common.wgsl")
        )
    };
}

/// A fold kernel file followed by `fold_common.wgsl` (Params, reductions), `weight_layout.wgsl`
/// and `common.wgsl`.
macro_rules! with_fold_common {
    ($file:literal) => {
        concat!(
            include_str!(concat!("../../shaders/", $file)),
            "\n",
            include_str!("../../shaders/fold_common.wgsl"),
            "\n",
            include_str!("../../shaders/weight_layout.wgsl"),
            "\n",
            include_str!("../../shaders/common.wgsl")
        )
    };
}

/// A kernel file followed by `weight_layout.wgsl` and `common.wgsl` (fake_quant_rows).
macro_rules! with_weight_layout {
    ($file:literal) => {
        concat!(
            include_str!(concat!("../../shaders/", $file)),
            "\n",
            include_str!("../../shaders/weight_layout.wgsl"),
            "\n",
            include_str!("../../shaders/common.wgsl")
        )
    };
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
    pub const ALL: [Shader; 20] = [
        Shader::Gemm,
        Shader::GemmF32,
        Shader::Conv,
        Shader::ConvF32,
        Shader::Depthwise,
        Shader::DepthwiseF32,
        Shader::Residual,
        Shader::Pool,
        Shader::Quantize,
        Shader::Batchnorm,
        Shader::Activation,
        Shader::PoolF32,
        Shader::Loss,
        Shader::Optim,
        Shader::FakeQuant,
        Shader::FakeQuantRows,
        Shader::Fold,
        Shader::FoldLinear,
        Shader::SumPool,
        Shader::Ceiling,
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
            Shader::Batchnorm => "batchnorm.wgsl",
            Shader::Activation => "activation.wgsl",
            Shader::PoolF32 => "pool_f32.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::FakeQuant => "fake_quant.wgsl",
            Shader::FakeQuantRows => "fake_quant_rows.wgsl",
            Shader::Fold => "fold.wgsl",
            Shader::FoldLinear => "fold_linear.wgsl",
            Shader::SumPool => "sum_pool.wgsl",
            Shader::Ceiling => "ceiling.wgsl",
        }
    }

    /// The full source: the kernel file followed by `common.wgsl`.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Gemm => with_tile!("gemm.wgsl"),
            Shader::GemmF32 => with_f32_tile!("gemm_f32.wgsl"),
            Shader::Conv => with_tile!("conv.wgsl"),
            Shader::ConvF32 => with_f32_tile!("conv_f32.wgsl"),
            Shader::Depthwise => with_common!("depthwise.wgsl"),
            Shader::DepthwiseF32 => with_common!("depthwise_f32.wgsl"),
            Shader::Residual => with_common!("residual.wgsl"),
            Shader::Pool => with_common!("pool.wgsl"),
            Shader::Quantize => with_common!("quantize.wgsl"),
            Shader::Batchnorm => with_common!("batchnorm.wgsl"),
            Shader::Activation => with_common!("activation.wgsl"),
            Shader::PoolF32 => with_common!("pool_f32.wgsl"),
            Shader::Loss => with_common!("loss.wgsl"),
            Shader::Optim => with_common!("optim.wgsl"),
            Shader::FakeQuant => with_common!("fake_quant.wgsl"),
            Shader::FakeQuantRows => with_weight_layout!("fake_quant_rows.wgsl"),
            Shader::Fold => with_fold_common!("fold.wgsl"),
            Shader::FoldLinear => with_fold_common!("fold_linear.wgsl"),
            Shader::SumPool => with_common!("sum_pool.wgsl"),
            Shader::Ceiling => with_common!("ceiling.wgsl"),
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
    ConvF32BackwardInput,
    ConvF32BackwardWeight,
    GemmF32BackwardInput,
    GemmF32BackwardWeight,
    GemmF32SumPartials,
    DepthwiseF32BackwardInput,
    DepthwiseF32BackwardWeight,
    BatchnormStats,
    BatchnormApply,
    BatchnormBackwardReduce,
    BatchnormBackwardApply,
    BatchnormStatsMerge,
    BatchnormBackwardMerge,
    ActivationForward,
    ActivationBackward,
    AddF32,
    ActivationAlphaReduce,
    MaxPoolF32,
    MaxPoolF32Backward,
    AvgPoolF32,
    AvgPoolF32Backward,
    SoftmaxCrossEntropy,
    SgdStep,
    FakeQuant,
    FakeQuantBackward,
    TensorStats,
    RowStats,
    FakeQuantRows,
    FoldScales,
    FoldConv,
    FoldConvBackward,
    FoldConvBackwardStats,
    FoldConvBackwardWeight,
    FoldLinear,
    FoldLinearBackward,
    FoldAlphaGrad,
    SumPool,
    SumPoolBackward,
    CeilingDp4a,
    CeilingFma,
    CeilingCopy,
}

impl Kernel {
    pub const ALL: [Kernel; 53] = [
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
        Kernel::ConvF32BackwardInput,
        Kernel::ConvF32BackwardWeight,
        Kernel::GemmF32BackwardInput,
        Kernel::GemmF32BackwardWeight,
        Kernel::GemmF32SumPartials,
        Kernel::DepthwiseF32BackwardInput,
        Kernel::DepthwiseF32BackwardWeight,
        Kernel::BatchnormStats,
        Kernel::BatchnormApply,
        Kernel::BatchnormBackwardReduce,
        Kernel::BatchnormBackwardApply,
        Kernel::BatchnormStatsMerge,
        Kernel::BatchnormBackwardMerge,
        Kernel::ActivationForward,
        Kernel::ActivationBackward,
        Kernel::AddF32,
        Kernel::ActivationAlphaReduce,
        Kernel::MaxPoolF32,
        Kernel::MaxPoolF32Backward,
        Kernel::AvgPoolF32,
        Kernel::AvgPoolF32Backward,
        Kernel::SoftmaxCrossEntropy,
        Kernel::SgdStep,
        Kernel::FakeQuant,
        Kernel::FakeQuantBackward,
        Kernel::TensorStats,
        Kernel::RowStats,
        Kernel::FakeQuantRows,
        Kernel::FoldScales,
        Kernel::FoldConv,
        Kernel::FoldConvBackward,
        Kernel::FoldConvBackwardStats,
        Kernel::FoldConvBackwardWeight,
        Kernel::FoldLinear,
        Kernel::FoldLinearBackward,
        Kernel::FoldAlphaGrad,
        Kernel::SumPool,
        Kernel::SumPoolBackward,
        Kernel::CeilingDp4a,
        Kernel::CeilingFma,
        Kernel::CeilingCopy,
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
            Kernel::ConvF32BackwardInput => Shader::ConvF32,
            Kernel::ConvF32BackwardWeight => Shader::ConvF32,
            Kernel::GemmF32BackwardInput => Shader::GemmF32,
            Kernel::GemmF32BackwardWeight => Shader::GemmF32,
            Kernel::GemmF32SumPartials => Shader::GemmF32,
            Kernel::DepthwiseF32BackwardInput => Shader::DepthwiseF32,
            Kernel::DepthwiseF32BackwardWeight => Shader::DepthwiseF32,
            Kernel::BatchnormStats => Shader::Batchnorm,
            Kernel::BatchnormApply => Shader::Batchnorm,
            Kernel::BatchnormBackwardReduce => Shader::Batchnorm,
            Kernel::BatchnormBackwardApply => Shader::Batchnorm,
            Kernel::BatchnormStatsMerge => Shader::Batchnorm,
            Kernel::BatchnormBackwardMerge => Shader::Batchnorm,
            Kernel::ActivationForward => Shader::Activation,
            Kernel::ActivationBackward => Shader::Activation,
            Kernel::AddF32 => Shader::Activation,
            Kernel::ActivationAlphaReduce => Shader::Activation,
            Kernel::MaxPoolF32 => Shader::PoolF32,
            Kernel::MaxPoolF32Backward => Shader::PoolF32,
            Kernel::AvgPoolF32 => Shader::PoolF32,
            Kernel::AvgPoolF32Backward => Shader::PoolF32,
            Kernel::SoftmaxCrossEntropy => Shader::Loss,
            Kernel::SgdStep => Shader::Optim,
            Kernel::FakeQuant => Shader::FakeQuant,
            Kernel::FakeQuantBackward => Shader::FakeQuant,
            Kernel::TensorStats => Shader::FakeQuant,
            Kernel::RowStats | Kernel::FakeQuantRows => Shader::FakeQuantRows,
            Kernel::FoldConv
            | Kernel::FoldConvBackward
            | Kernel::FoldConvBackwardStats
            | Kernel::FoldConvBackwardWeight => Shader::Fold,
            Kernel::FoldScales
            | Kernel::FoldLinear
            | Kernel::FoldLinearBackward
            | Kernel::FoldAlphaGrad => Shader::FoldLinear,
            Kernel::SumPool | Kernel::SumPoolBackward => Shader::SumPool,
            Kernel::CeilingDp4a | Kernel::CeilingFma | Kernel::CeilingCopy => Shader::Ceiling,
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
            Kernel::ConvF32BackwardInput => "conv_f32_backward_input",
            Kernel::ConvF32BackwardWeight => "conv_f32_backward_weight",
            Kernel::GemmF32BackwardInput => "gemm_f32_backward_input",
            Kernel::GemmF32BackwardWeight => "gemm_f32_backward_weight",
            Kernel::GemmF32SumPartials => "gemm_f32_sum_partials",
            Kernel::DepthwiseF32BackwardInput => "depthwise_f32_backward_input",
            Kernel::DepthwiseF32BackwardWeight => "depthwise_f32_backward_weight",
            Kernel::BatchnormStats => "batchnorm_stats",
            Kernel::BatchnormApply => "batchnorm_apply",
            Kernel::BatchnormBackwardReduce => "batchnorm_backward_reduce",
            Kernel::BatchnormBackwardApply => "batchnorm_backward_apply",
            Kernel::BatchnormStatsMerge => "batchnorm_stats_merge",
            Kernel::BatchnormBackwardMerge => "batchnorm_backward_merge",
            Kernel::ActivationForward => "activation_forward",
            Kernel::ActivationBackward => "activation_backward",
            Kernel::AddF32 => "add_f32",
            Kernel::ActivationAlphaReduce => "activation_alpha_reduce",
            Kernel::MaxPoolF32 => "max_pool_f32",
            Kernel::MaxPoolF32Backward => "max_pool_f32_backward",
            Kernel::AvgPoolF32 => "avg_pool_f32",
            Kernel::AvgPoolF32Backward => "avg_pool_f32_backward",
            Kernel::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Kernel::SgdStep => "sgd_step",
            Kernel::FakeQuant => "fake_quant",
            Kernel::FakeQuantBackward => "fake_quant_backward",
            Kernel::TensorStats => "tensor_stats",
            Kernel::RowStats => "row_stats",
            Kernel::FakeQuantRows => "fake_quant_rows",
            Kernel::FoldScales => "fold_scales",
            Kernel::FoldConv => "fold_conv",
            Kernel::FoldConvBackward => "fold_conv_backward",
            Kernel::FoldConvBackwardStats => "fold_conv_backward_stats",
            Kernel::FoldConvBackwardWeight => "fold_conv_backward_weight",
            Kernel::FoldLinear => "fold_linear",
            Kernel::FoldLinearBackward => "fold_linear_backward",
            Kernel::FoldAlphaGrad => "fold_alpha_grad",
            Kernel::SumPool => "sum_pool",
            Kernel::SumPoolBackward => "sum_pool_backward",
            Kernel::CeilingDp4a => "ceiling_dp4a",
            Kernel::CeilingFma => "ceiling_fma",
            Kernel::CeilingCopy => "ceiling_copy",
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
