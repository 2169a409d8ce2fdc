//! The layer-list builder shared by the architecture builders: appends conv + BN (+ activation)
//! units, residual adds, pools and the classifier head, tracking the current tensor and every
//! tensor's channel count (tensor 0 = the input, layer `i` produces tensor `i + 1`).

use super::{ConvOp, Layer, Op};
use crate::model::float::ConvKind;

/// Appends layers, tracking the current tensor and every tensor's channel count.
pub(crate) struct Builder {
    pub(crate) layers: Vec<Layer>,
    chans: Vec<usize>,
    /// The current tensor.
    pub(crate) cur: usize,
}

impl Builder {
    pub(crate) fn new(in_channels: usize) -> Builder {
        Builder {
            layers: Vec::new(),
            chans: vec![in_channels],
            cur: 0,
        }
    }

    /// Channels of the current tensor.
    pub(crate) fn c(&self) -> usize {
        self.chans[self.cur]
    }

    fn push(&mut self, name: String, op: Op, inputs: Vec<usize>, c: usize) -> usize {
        self.layers.push(Layer { name, op, inputs });
        self.chans.push(c);
        self.cur = self.layers.len();
        self.cur
    }

    /// Conv `{name}` on tensor `from` (`cout` ignored for depthwise), then BN `{bn}`, then the
    /// activation `act` (named `{act_name}`) if any. Returns the last tensor.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv_bn(
        &mut self,
        from: usize,
        name: &str,
        bn: &str,
        kind: ConvKind,
        cout: usize,
        k: usize,
        stride: usize,
        act: Option<(Op, &str)>,
    ) -> usize {
        let cin = self.chans[from];
        let cout = if kind == ConvKind::Depthwise {
            cin
        } else {
            cout
        };
        let conv = ConvOp {
            kind,
            cin,
            cout,
            k,
            stride,
            pad: k / 2,
        };
        self.push(name.into(), Op::Conv(conv), vec![from], cout);
        self.push(bn.into(), Op::BatchNorm { c: cout }, vec![self.cur], cout);
        if let Some((op, act_name)) = act {
            self.push(act_name.into(), op, vec![self.cur], cout);
        }
        self.cur
    }

    /// `body + shortcut`, then `act` if any.
    pub(crate) fn add(
        &mut self,
        name: &str,
        body: usize,
        shortcut: usize,
        act: Option<(Op, &str)>,
    ) {
        let c = self.chans[body];
        self.push(name.into(), Op::Add, vec![body, shortcut], c);
        if let Some((op, act_name)) = act {
            self.push(act_name.into(), op, vec![self.cur], c);
        }
    }

    pub(crate) fn max_pool(&mut self, name: &str, k: usize, stride: usize, pad: usize) {
        let c = self.c();
        self.push(
            name.into(),
            Op::MaxPool { k, stride, pad },
            vec![self.cur],
            c,
        );
    }

    /// Global average pool `{pool}`, then the classifier `{fc}`.
    pub(crate) fn head(&mut self, pool: &str, fc: &str, classes: usize) {
        let c = self.c();
        self.push(pool.into(), Op::GlobalAvgPool, vec![self.cur], c);
        let op = Op::Linear { k: c, n: classes };
        self.push(fc.into(), op, vec![self.cur], classes);
    }
}
