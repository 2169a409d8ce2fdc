//! Every shader parses and validates with naga (no GPU needed), and every uniform `Params`
//! struct has the size of its Rust mirror, so the host and WGSL layouts cannot drift.

use f8net::gpu::{Kernel, Shader};

fn parse(shader: Shader) -> naga::Module {
    naga::front::wgsl::parse_str(shader.source())
        .unwrap_or_else(|e| panic!("{}: {}", shader.file(), e.emit_to_string(shader.source())))
}

fn validate(shader: Shader, module: &naga::Module) {
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    v.validate(module)
        .unwrap_or_else(|e| panic!("{}: {}", shader.file(), e.emit_to_string(shader.source())));
}

/// Size in bytes of the WGSL struct `Params` of a shader.
fn params_size(shader: Shader) -> u32 {
    let module = parse(shader);
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Params"))
        .unwrap_or_else(|| panic!("{} has no struct Params", shader.file()));
    ty.inner.size(module.to_ctx())
}

#[test]
fn every_shader_parses_and_validates() {
    for shader in Shader::ALL {
        let module = parse(shader);
        validate(shader, &module);
    }
}

#[test]
fn every_kernel_entry_point_exists() {
    for kernel in Kernel::ALL {
        let module = parse(kernel.shader());
        assert!(
            module.entry_points.iter().any(|e| e.name == kernel.name()),
            "{} has no entry point {}",
            kernel.shader().file(),
            kernel.name()
        );
    }
}

#[test]
fn params_structs_match_their_rust_mirrors() {
    use f8net::ops::*;
    use std::mem::size_of;
    let mirrors: &[(Shader, usize)] = &[
        (Shader::Gemm, size_of::<gemm::GemmParams>()),
        (Shader::GemmF32, size_of::<gemm_f32::GemmF32Params>()),
        (Shader::Conv, size_of::<conv::ConvParams>()),
        (Shader::ConvF32, size_of::<conv_f32::ConvF32Params>()),
        (Shader::Depthwise, size_of::<depthwise::DepthwiseParams>()),
        (
            Shader::DepthwiseF32,
            size_of::<depthwise_f32::DepthwiseF32Params>(),
        ),
        (Shader::Residual, size_of::<residual::ResidualParams>()),
        (Shader::Pool, size_of::<pool::PoolParams>()),
        (Shader::Quantize, size_of::<quantize::QuantizeParams>()),
        (Shader::Batchnorm, size_of::<batchnorm::BatchnormParams>()),
        (
            Shader::Activation,
            size_of::<activation::ActivationParams>(),
        ),
        (Shader::PoolF32, size_of::<pool_f32::PoolF32Params>()),
        (Shader::Loss, size_of::<loss::LossParams>()),
        (Shader::Optim, size_of::<optim::SgdParams>()),
        (Shader::FakeQuant, size_of::<fake_quant::FakeQuantParams>()),
        (
            Shader::FakeQuantRows,
            size_of::<fake_quant_rows::FakeQuantRowsParams>(),
        ),
        (Shader::Fold, size_of::<fold::FoldParams>()),
        (Shader::FoldLinear, size_of::<fold::FoldParams>()),
        (Shader::SumPool, size_of::<sum_pool::SumPoolParams>()),
        (Shader::Ceiling, size_of::<ceiling::CeilingParams>()),
    ];
    for shader in Shader::ALL {
        let declares = shader.source().contains("struct Params");
        let listed = mirrors.iter().any(|(s, _)| *s == shader);
        assert_eq!(
            declares,
            listed,
            "{}: a shader with a Params struct needs its Rust mirror listed here",
            shader.file()
        );
    }
    for &(shader, size) in mirrors {
        assert_eq!(
            params_size(shader) as usize,
            size,
            "{} Params vs Rust mirror",
            shader.file()
        );
        assert_eq!(
            size % 16,
            0,
            "{} Params size {size} is not a multiple of 16",
            shader.file()
        );
    }
}
