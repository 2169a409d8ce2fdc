//! EfficientNet-Lite0 (ImageNet-1k): building the float graph from the converted safetensors
//! file (`tools/convert_efficientnet_lite0.py`, all F32, PyTorch OIHW conv weights), and the
//! model's input normalization.
//!
//! Network (matches `tools/reference_forward.py`): input RGB `(x − 127)/128`; stem 3×3 s2
//! 3→32, BN, ReLU6; 16 MBConv blocks `[1×1 expand, BN, ReLU6]` (absent when the expand ratio is
//! 1), depthwise k×k stride s, BN, ReLU6, 1×1 project, BN, `+ input` when s = 1 and in = out;
//! head 1×1 320→1280, BN, ReLU6, global mean, fc 1280→1000. BN (eps 1e-3) is folded into the
//! conv before it: `w·γ/√(var+eps)`, `β − γμ/√(var+eps)`. Padding is TF "SAME"
//! (`Window::same`; stride 2 pads the extra pixel bottom/right).

use super::float::{Activation, ConvKind, FloatConv, FloatModel, FloatNode, Hwc};
use super::st::{self, F32Tensors};
use crate::error::{Error, Result};
use crate::reference::Window;
use std::path::Path;

/// Image side the network was trained at.
pub const INPUT_SIZE: usize = crate::preprocess::INPUT_SIZE;
/// Number of ImageNet classes (logits).
pub const NUM_CLASSES: usize = 1000;
/// BatchNorm epsilon of the original model.
pub const BN_EPS: f32 = 1e-3;
/// Stages: (repeats, kernel, stride, expand ratio, in channels, out channels); the stride
/// applies to the first block of a stage.
pub const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
const STEM_C: usize = 32;
const HEAD_C: usize = 1280;

/// Network input from uint8 RGB HWC bytes (any number of concatenated images): `(x − 127)/128`.
pub fn input_from_rgb(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| (b as f32 - 127.0) / 128.0).collect()
}

/// Load the float EfficientNet-Lite0 for 224×224 inputs.
pub fn load_float(path: impl AsRef<Path>) -> Result<FloatModel> {
    let path = path.as_ref();
    let tensors = st::read_f32(path)?;
    float_from_tensors(
        tensors,
        &path.display().to_string(),
        (INPUT_SIZE, INPUT_SIZE),
    )
}

/// Build the float graph from already-read tensors for an `input_hw` input (windows depend on
/// the input size through SAME padding). `source` names the file in errors. Every expected
/// tensor must exist with its exact shape; unused extra tensors are an error too (a different
/// model).
pub fn float_from_tensors(
    mut t: F32Tensors,
    source: &str,
    input_hw: (usize, usize),
) -> Result<FloatModel> {
    let mut b = Builder {
        t: &mut t,
        source,
        nodes: Vec::new(),
        cur: 0,
        shape: [input_hw.0, input_hw.1, 3],
    };
    b.conv(
        ConvKind::Dense,
        "_conv_stem",
        "_bn0",
        3,
        STEM_C,
        3,
        2,
        Activation::Relu6,
    )?;
    let mut block = 0;
    for &(repeats, k, stride, expand, cin, cout) in &STAGES {
        for r in 0..repeats {
            let (cin, stride) = if r == 0 { (cin, stride) } else { (cout, 1) };
            let pre = format!("_blocks.{block}.");
            let input = b.cur;
            let mid = cin * expand;
            if expand != 1 {
                let (w, bn) = (pre.clone() + "_expand_conv", pre.clone() + "_bn0");
                b.conv(ConvKind::Dense, &w, &bn, cin, mid, 1, 1, Activation::Relu6)?;
            }
            let (w, bn) = (pre.clone() + "_depthwise_conv", pre.clone() + "_bn1");
            b.conv(
                ConvKind::Depthwise,
                &w,
                &bn,
                mid,
                mid,
                k,
                stride,
                Activation::Relu6,
            )?;
            let (w, bn) = (pre.clone() + "_project_conv", pre + "_bn2");
            b.conv(ConvKind::Dense, &w, &bn, mid, cout, 1, 1, Activation::None)?;
            if stride == 1 && cin == cout {
                b.push(
                    FloatNode::Add {
                        a: input,
                        b: b.cur,
                        act: Activation::None,
                    },
                    b.shape,
                );
            }
            block += 1;
        }
    }
    let last = STAGES[STAGES.len() - 1].5;
    b.conv(
        ConvKind::Dense,
        "_conv_head",
        "_bn1",
        last,
        HEAD_C,
        1,
        1,
        Activation::Relu6,
    )?;
    b.push(FloatNode::GlobalAvgPool { input: b.cur }, [1, 1, HEAD_C]);
    let weight = b.take("_fc.weight", &[NUM_CLASSES, HEAD_C])?;
    let bias = b.take("_fc.bias", &[NUM_CLASSES])?;
    let fc = FloatNode::Linear {
        input: b.cur,
        name: "_fc".into(),
        n: NUM_CLASSES,
        k: HEAD_C,
        weight,
        bias,
    };
    b.push(fc, [1, 1, NUM_CLASSES]);
    let nodes = std::mem::take(&mut b.nodes);
    if !t.is_empty() {
        let mut extra: Vec<&String> = t.keys().collect();
        extra.sort();
        return Err(Error::file(
            source,
            format!(
                "{} unexpected tensors (not EfficientNet-Lite0?): {extra:?}",
                extra.len()
            ),
        ));
    }
    let model = FloatModel {
        name: "efficientnet_lite0".into(),
        input_hw,
        input_c: 3,
        nodes,
    };
    model.tensor_shapes()?;
    Ok(model)
}

struct Builder<'a> {
    t: &'a mut F32Tensors,
    source: &'a str,
    nodes: Vec<FloatNode>,
    /// Index of the current tensor and its [h, w, c].
    cur: usize,
    shape: Hwc,
}

impl Builder<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        st::take(self.t, self.source, name, shape)
    }

    fn push(&mut self, node: FloatNode, shape: Hwc) {
        self.nodes.push(node);
        self.cur = self.nodes.len();
        self.shape = shape;
    }

    /// Conv `conv` (weight `{conv}.weight`, OIHW) followed by BN `{bn}.*`, folded; SAME window
    /// for the current tensor's size.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        kind: ConvKind,
        conv: &str,
        bn: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        act: Activation,
    ) -> Result<()> {
        let [h, w, c] = self.shape;
        if c != cin {
            return Err(Error::shape(
                "efficientnet",
                format!("{conv}: input has {c} channels, expected {cin}"),
            ));
        }
        let wshape = match kind {
            ConvKind::Dense => [cout, cin, k, k],
            ConvKind::Depthwise => [cout, 1, k, k],
        };
        let oihw = self.take(&format!("{conv}.weight"), &wshape)?;
        let gamma = self.take(&format!("{bn}.weight"), &[cout])?;
        let beta = self.take(&format!("{bn}.bias"), &[cout])?;
        let mean = self.take(&format!("{bn}.running_mean"), &[cout])?;
        let var = self.take(&format!("{bn}.running_var"), &[cout])?;
        let mut bias = vec![0.0f32; cout];
        let mut weight = vec![0.0f32; oihw.len()];
        let per_out = oihw.len() / cout;
        for o in 0..cout {
            let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
            bias[o] = beta[o] - mean[o] * scale;
            let src = &oihw[o * per_out..(o + 1) * per_out];
            let dst = &mut weight[o * per_out..(o + 1) * per_out];
            match kind {
                // [i][ky][kx] -> [ky][kx][i]
                ConvKind::Dense => {
                    for i in 0..cin {
                        for t in 0..k * k {
                            dst[t * cin + i] = src[i * k * k + t] * scale;
                        }
                    }
                }
                ConvKind::Depthwise => {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d = s * scale);
                }
            }
        }
        let window = Window::same(k, stride, h, w);
        let (oh, ow) = window.out_hw("efficientnet", h, w)?;
        let fc = FloatConv {
            name: conv.into(),
            kind,
            cout,
            cin,
            kh: k,
            kw: k,
            window,
            weight,
            bias,
            act,
        };
        self.push(
            FloatNode::Conv {
                input: self.cur,
                conv: fc,
            },
            [oh, ow, cout],
        );
        Ok(())
    }
}
