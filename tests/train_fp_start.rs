//! The F8Net start from an FP checkpoint (`train::fp_start`): the weight clamp keeps the FP
//! network's evaluation and bounds every folded weight at 127/128, and an F8Net source is left
//! alone. (Dead channels: `tests/train_conv_bn.rs`.)

use crate::common::*;
use crate::train_net::{batch, tiny};
use f8net::reference::fold::fold_forward;
use f8net::reference::optim::WeightDecayScheme;
use f8net::train::conv_bn::Precision;
use f8net::train::fp_start::{float_weight_limit, Source};
use f8net::train::net::{Net, Node};

/// The tiny net trained a few FP steps, then with unit `c2`'s weights blown up so that many
/// folded weights lie beyond the FP clamp (as long FP training leaves them).
fn fp_net_beyond_the_clamp() -> (Net, Vec<f32>, Vec<u32>) {
    let mut net = tiny(Precision::Float);
    let mut rng = Rng::new(5);
    for _ in 0..4 {
        let (x, y) = batch(&mut rng, 16);
        net.train_step(&x, &y, 0.05, 4e-5, WeightDecayScheme::All)
            .unwrap();
    }
    if let Node::Conv { unit, .. } = &mut net.nodes[1] {
        unit.weight.iter_mut().for_each(|w| *w *= 6.0);
    }
    let (x, y) = batch(&mut rng, 32);
    (net, x, y)
}

/// max |W̃| over every conv unit at the running statistics and the net's scales.
fn max_w_eff(net: &Net) -> f32 {
    let mut m = 0f32;
    for (i, node) in net.nodes.iter().enumerate() {
        if let Node::Conv { unit, next, .. } = node {
            let stats = unit.running_stats();
            let s_out = next.map_or(1.0, |j| net.node_scale(j));
            let f = fold_forward(
                &unit.weight,
                &unit.gamma,
                &unit.beta,
                &stats,
                net.node_scale(i),
                s_out,
            )
            .unwrap();
            m = f.w_eff.iter().fold(m, |m, w| m.max(w.abs()));
        }
    }
    m
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn the_clamp_keeps_the_float_evaluation_and_bounds_every_folded_weight() {
    let (fp, x, _) = fp_net_beyond_the_clamp();
    let n = x.len() / 64;
    let limit = float_weight_limit();
    assert_eq!(limit, 127.0 / 128.0);
    assert!(max_w_eff(&fp) > 2.0 * limit, "the case must need the clamp");
    let before = fp.forward_eval(&x, n).unwrap();
    let mut clamped = fp.clone();
    let r = clamped.prepare_fixed_start(Source::Float);
    assert!(
        r.clamped_weights > 0 && r.clamped_weights < r.weights,
        "{r:?}"
    );
    assert_eq!(r.dead_channels, 0);
    assert!(max_w_eff(&clamped) <= limit * (1.0 + 1e-6));
    let after = clamped.forward_eval(&x, n).unwrap();
    let scale = before.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        max_diff(&before, &after) <= 1e-5 * scale,
        "FP logits moved by {} (scale {scale})",
        max_diff(&before, &after)
    );
    // The 8-bit start is much closer to the FP network with the clamp than without.
    let fixed = |mut net: Net| {
        net.precision = Precision::Fixed;
        net.forward_eval(&x, n).unwrap()
    };
    let (raw, start) = (fixed(fp.clone()), fixed(clamped));
    let (e_raw, e_start) = (max_diff(&raw, &before), max_diff(&start, &before));
    assert!(
        e_start < 0.25 * e_raw,
        "8-bit start error {e_start} with the clamp, {e_raw} without"
    );
}

#[test]
fn an_f8net_source_keeps_its_weights() {
    let (fp, _, _) = fp_net_beyond_the_clamp();
    let mut net = fp.clone();
    let r = net.prepare_fixed_start(Source::Fixed);
    assert_eq!((r.clamped_weights, r.dead_channels), (0, 0));
    assert_eq!(net, fp);
}
