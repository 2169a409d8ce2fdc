//! MobileNets.
//!
//! MobileNet-V2 is torchvision's `mobilenet_v2`: `features.0` = 3×3/2 conv 3→32 (`.0`), BN
//! (`.1`), ReLU6; 17 inverted residual blocks `features.1..17` from the (t, c, n, s) table —
//! `conv.0.0`/`conv.0.1` 1×1 expand + BN + ReLU6 (absent when t = 1), then depthwise 3×3 +
//! BN + ReLU6 (`conv.1.*`, or `conv.0.*` when t = 1), then the linear 1×1 projection and its BN
//! (`conv.2`/`conv.3`, or `conv.1`/`conv.2`); `+ input` when stride 1 and in = out (no ReLU);
//! `features.18` = 1×1 conv to 1280 + BN + ReLU6; global mean; `classifier.1` linear
//! (`classifier.0` is dropout). Channels are `_make_divisible(c·width, 8)`, the last one
//! `_make_divisible(1280·max(1, width), 8)`, as torchvision does.
//!
//! MobileNet-V1 (Howard et al. 2017, the 1.0-224 network with BN and a 1000-way FC; there is no
//! torchvision model, so the names are PyTorch `Sequential` style): `features.0` = 3×3/2 conv
//! 3→32 (`.0`), BN (`.1`), ReLU6 (`.2`); 13 depthwise-separable blocks `features.1..13`, each
//! depthwise 3×3 conv (`.0`), BN (`.1`), ReLU6 (`.2`), pointwise 1×1 conv (`.3`), BN (`.4`),
//! ReLU6 (`.5`); global mean; `fc`. Channels 64, 128×2, 256×2, 512×6, 1024×2, stride 2 on the
//! first block of each group but the first, `_make_divisible(c·width, 8)` (TF-slim's widths).
//!
//! Small form (both): the stem conv has stride 1; everything else is unchanged.

use super::{make_divisible, ArchConfig, Builder, Form, Op};
use crate::error::Result;
use crate::model::float::ConvKind;

/// MobileNet-V2 (expand ratio t, channels c, repeats n, stride s), torchvision's table.
pub const V2_SETTING: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNet-V1 (channels, repeats, stride of the first repeat).
pub const V1_SETTING: [(usize, usize, usize); 5] = [
    (64, 1, 1),
    (128, 2, 2),
    (256, 2, 2),
    (512, 6, 2),
    (1024, 2, 2),
];

fn stem_stride(cfg: &ArchConfig) -> usize {
    match cfg.form {
        Form::ImageNet => 2,
        Form::Small => 1,
    }
}

fn ch(cfg: &ArchConfig, c: usize) -> usize {
    make_divisible(c as f64 * cfg.width as f64, 8)
}

/// torchvision's `Conv2dNormActivation`: conv `{p}.0`, BN `{p}.1`, ReLU6 `{p}.2`.
fn conv_bn_relu6(
    b: &mut Builder,
    from: usize,
    p: &str,
    kind: ConvKind,
    cout: usize,
    k: usize,
    stride: usize,
) -> usize {
    let (c, n, a) = (format!("{p}.0"), format!("{p}.1"), format!("{p}.2"));
    b.conv_bn(from, &c, &n, kind, cout, k, stride, Some((Op::Relu6, &a)))
}

pub(super) fn build_v2(cfg: &ArchConfig, b: &mut Builder) -> Result<()> {
    let first = ch(cfg, 32);
    conv_bn_relu6(
        b,
        0,
        "features.0",
        ConvKind::Dense,
        first,
        3,
        stem_stride(cfg),
    );
    let mut f = 1;
    for &(t, c, n, s) in &V2_SETTING {
        let out = ch(cfg, c);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let (input, inp) = (b.cur, b.c());
            let hidden = inp * t;
            let p = format!("features.{f}.conv");
            let mut j = 0;
            let mut x = input;
            if t != 1 {
                x = conv_bn_relu6(b, x, &format!("{p}.0"), ConvKind::Dense, hidden, 1, 1);
                j = 1;
            }
            let q = format!("{p}.{j}");
            x = conv_bn_relu6(b, x, &q, ConvKind::Depthwise, hidden, 3, stride);
            let (pw, bn) = (format!("{p}.{}", j + 1), format!("{p}.{}", j + 2));
            x = b.conv_bn(x, &pw, &bn, ConvKind::Dense, out, 1, 1, None);
            if stride == 1 && inp == out {
                b.add(&format!("features.{f}.add"), x, input, None);
            }
            f += 1;
        }
    }
    let last = make_divisible(1280.0 * (cfg.width as f64).max(1.0), 8);
    conv_bn_relu6(
        b,
        b.cur,
        &format!("features.{f}"),
        ConvKind::Dense,
        last,
        1,
        1,
    );
    b.head("avgpool", "classifier.1", cfg.classes);
    Ok(())
}

pub(super) fn build_v1(cfg: &ArchConfig, b: &mut Builder) -> Result<()> {
    let stem = ch(cfg, 32);
    conv_bn_relu6(
        b,
        0,
        "features.0",
        ConvKind::Dense,
        stem,
        3,
        stem_stride(cfg),
    );
    let mut f = 1;
    for &(c, n, s) in &V1_SETTING {
        let out = ch(cfg, c);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let p = |k: usize| format!("features.{f}.{k}");
            let a = p(2);
            let x = b.conv_bn(
                b.cur,
                &p(0),
                &p(1),
                ConvKind::Depthwise,
                0,
                3,
                stride,
                Some((Op::Relu6, &a)),
            );
            let a = p(5);
            b.conv_bn(
                x,
                &p(3),
                &p(4),
                ConvKind::Dense,
                out,
                1,
                1,
                Some((Op::Relu6, &a)),
            );
            f += 1;
        }
    }
    b.head("avgpool", "fc", cfg.classes);
    Ok(())
}
