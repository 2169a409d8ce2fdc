//! F8Net wiring of an architecture (F8NET.md §2.1, §2.5, §2.7): for every conv and linear
//! layer, what its 8-bit input is and whose PACT clipping level α it uses.
//!
//! - Input kind: the first layer reads the 8-bit image (FL 8, α forced to 1: weight-only);
//!   a layer reading a ReLU/ReLU6 output (through pools) reads unsigned codes; anything else —
//!   a BN output or a residual sum without ReLU, i.e. MobileNet-V2's block inputs after the
//!   first stage and its tail conv input — is signed.
//! - α masters: a residual stream is the chain of tensors joined by identity shortcuts (a
//!   block's input and its output, after the ReLU if any). Every conv that reads a tensor of one
//!   stream — each block's first conv, a downsample conv, the next stage's first block — divides
//!   by the same scale, so they share the α of the first of them in layer order, the master
//!   (the official code's `master_layer` chain: `get_alpha()` returns the master's α). Convs
//!   reading the same non-stream tensor also share (ResNet-50's `layer1.0.conv1` and
//!   `layer1.0.downsample.0`: the official code gives those separate α, which §2.5 notes as a
//!   quirk; sharing keeps their common input in one scale). FLs stay private.

use super::{Layer, Op};

/// What a conv or linear layer's 8-bit input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// The 8-bit input image (the first layer).
    Image,
    /// uint8 codes: the input follows a ReLU/ReLU6.
    Unsigned,
    /// int8 codes.
    Signed,
}

/// F8Net metadata of one conv or linear layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wiring {
    /// Index into `Arch::layers`.
    pub layer: usize,
    pub name: String,
    pub input: InputKind,
    /// The conv whose α this layer uses; `None` when it has its own.
    pub alpha_master: Option<String>,
}

/// The input kind of a layer reading tensor `t`.
fn input_kind(layers: &[Layer], mut t: usize) -> InputKind {
    loop {
        let Some(p) = t.checked_sub(1).and_then(|i| layers.get(i)) else {
            return InputKind::Image;
        };
        match p.op {
            Op::Relu | Op::Relu6 => return InputKind::Unsigned,
            Op::MaxPool { .. } | Op::GlobalAvgPool => t = p.inputs.first().copied().unwrap_or(0),
            _ => return InputKind::Signed,
        }
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Wiring of every conv and linear layer, in layer order.
pub(crate) fn compute(layers: &[Layer]) -> Vec<Wiring> {
    let nt = layers.len() + 1;
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nt];
    for (i, l) in layers.iter().enumerate() {
        for &t in &l.inputs {
            if let Some(c) = consumers.get_mut(t) {
                c.push(i);
            }
        }
    }
    // Join each identity shortcut's input with the block output (after its ReLU, if any).
    let mut parent: Vec<usize> = (0..nt).collect();
    for (i, l) in layers.iter().enumerate() {
        if l.op != Op::Add {
            continue;
        }
        let mut out = i + 1;
        if let [only] = consumers[out][..] {
            if matches!(layers[only].op, Op::Relu | Op::Relu6) {
                out = only + 1;
            }
        }
        for &t in &l.inputs {
            // An identity shortcut: the tensor is read by something besides this add.
            if consumers.get(t).is_some_and(|c| c.len() > 1) {
                let (a, b) = (find(&mut parent, t), find(&mut parent, out));
                parent[b] = a;
            }
        }
    }
    // First conv (layer order) reading each stream.
    let mut master: Vec<Option<usize>> = vec![None; nt];
    let mut out = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let t = l.inputs.first().copied().unwrap_or(0);
        let alpha_master = match l.op {
            Op::Conv(_) if t > 0 => {
                let root = find(&mut parent, t);
                match master[root] {
                    Some(m) => Some(layers[m].name.clone()),
                    None => {
                        master[root] = Some(i);
                        None
                    }
                }
            }
            Op::Conv(_) | Op::Linear { .. } => None,
            _ => continue,
        };
        out.push(Wiring {
            layer: i,
            name: l.name.clone(),
            input: input_kind(layers, t),
            alpha_master,
        });
    }
    out
}
