//! ResNets: ResNet-18 (basic blocks 2-2-2-2, 64..512 channels) and ResNet-50 (bottlenecks
//! 3-4-6-3, expansion 4) as in torchvision, and a CIFAR-style ResNet-20 (basic blocks 3-3-3,
//! 16/32/64 channels).
//!
//! Names are torchvision's: `conv1`, `bn1`, `layer{s}.{i}.conv{1,2,3}`, `.bn{1,2,3}`,
//! `.downsample.0` (1×1 conv, stride of the block) and `.downsample.1` (BN), `fc`. A block has
//! a downsample shortcut when its stride is not 1 or its channels change; otherwise the shortcut
//! is the identity. The add is followed by a ReLU. ResNet-20 uses the same names and the same
//! projection shortcut (torchvision's "option B"; the CIFAR paper's option A, zero-padded
//! identity, has no integer op here), so its parameter count is 0.27 M like the paper's.
//!
//! Forms: ImageNet stem `conv1` 7×7/2 (pad 3) + BN + ReLU + max pool 3×3/2 (pad 1); small stem
//! `conv1` 3×3/1 + BN + ReLU. Stage strides 1, 2, 2(, 2) in both forms. Width: every channel
//! count is `round(c·width)`; a bottleneck's output is 4× its scaled middle width.

use super::{ArchConfig, Builder, Family, Form, Op};
use crate::error::Result;
use crate::model::float::ConvKind;

/// Blocks per stage, base channels per stage, bottleneck or not, stem channels.
fn layout(family: Family) -> (&'static [usize], &'static [usize], bool, usize) {
    match family {
        Family::ResNet50 => (&[3, 4, 6, 3], &[64, 128, 256, 512], true, 64),
        Family::ResNet20 => (&[3, 3, 3], &[16, 32, 64], false, 16),
        _ => (&[2, 2, 2, 2], &[64, 128, 256, 512], false, 64),
    }
}

fn relu(name: &str) -> Option<(Op, &str)> {
    Some((Op::Relu, name))
}

pub(super) fn build(cfg: &ArchConfig, b: &mut Builder) -> Result<()> {
    let (blocks, feats, bottleneck, stem) = layout(cfg.family);
    let stem_c = cfg.scaled(stem, "conv1")?;
    match cfg.form {
        Form::ImageNet => {
            b.conv_bn(
                0,
                "conv1",
                "bn1",
                ConvKind::Dense,
                stem_c,
                7,
                2,
                relu("relu"),
            );
            b.max_pool("maxpool", 3, 2, 1);
        }
        Form::Small => {
            b.conv_bn(
                0,
                "conv1",
                "bn1",
                ConvKind::Dense,
                stem_c,
                3,
                1,
                relu("relu"),
            );
        }
    }
    for (s, (&n, &f)) in blocks.iter().zip(feats).enumerate() {
        let mid = cfg.scaled(f, &format!("layer{}", s + 1))?;
        let out = if bottleneck { 4 * mid } else { mid };
        for i in 0..n {
            let stride = if i == 0 && s > 0 { 2 } else { 1 };
            let p = format!("layer{}.{i}.", s + 1);
            let name = |x: &str| format!("{p}{x}");
            let (input, cin) = (b.cur, b.c());
            let body = if bottleneck {
                let t = b.conv_bn(
                    input,
                    &name("conv1"),
                    &name("bn1"),
                    ConvKind::Dense,
                    mid,
                    1,
                    1,
                    relu(&name("relu1")),
                );
                let t = b.conv_bn(
                    t,
                    &name("conv2"),
                    &name("bn2"),
                    ConvKind::Dense,
                    mid,
                    3,
                    stride,
                    relu(&name("relu2")),
                );
                b.conv_bn(
                    t,
                    &name("conv3"),
                    &name("bn3"),
                    ConvKind::Dense,
                    out,
                    1,
                    1,
                    None,
                )
            } else {
                let t = b.conv_bn(
                    input,
                    &name("conv1"),
                    &name("bn1"),
                    ConvKind::Dense,
                    mid,
                    3,
                    stride,
                    relu(&name("relu1")),
                );
                b.conv_bn(
                    t,
                    &name("conv2"),
                    &name("bn2"),
                    ConvKind::Dense,
                    out,
                    3,
                    1,
                    None,
                )
            };
            let shortcut = if stride != 1 || cin != out {
                let ds = b.conv_bn(
                    input,
                    &name("downsample.0"),
                    &name("downsample.1"),
                    ConvKind::Dense,
                    out,
                    1,
                    stride,
                    None,
                );
                Some(ds)
            } else {
                None
            };
            b.add(
                &name("add"),
                body,
                shortcut.unwrap_or(input),
                relu(&name("relu")),
            );
        }
    }
    b.head("avgpool", "fc", cfg.classes);
    Ok(())
}
