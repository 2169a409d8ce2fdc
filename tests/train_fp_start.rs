//! The F8Net start from an FP checkpoint (`train::fp_start`): the weight clamp keeps the FP
//! network's evaluation and bounds every folded weight at 127/128, an F8Net source is left
//! alone, the running FLs walk to the batch FLs, and with the BN statistics re-stated the
//! training forward computes the network the evaluation does. (Dead channels:
//! `tests/train_conv_bn.rs`.)

use crate::common::*;
use crate::train_bn_stats::{data, rel_diff, running, stats_diff, RESTATE_TOLERANCE};
use crate::train_net::{batch, tiny};
use f8net::reference::fold::fold_forward;
use f8net::reference::optim::WeightDecayScheme;
use f8net::train::bn_stats::{reestimate, restate, BnEstimate};
use f8net::train::conv_bn::Precision;
use f8net::train::fp_start::{float_weight_limit, Source, FL_WALK_BATCHES};
use f8net::train::net::{Net, Node};
use f8net::train::weight_format::WeightFormat;

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

/// `RESTATE_TOLERANCE` for the 8-bit training forward: the evaluation's unbiased variance moves
/// σ by ~1/(2m) against training's, which can round a weight or activation code the other way
/// (measured: 6.4e-3 here, against 9.3 without the re-statement).
const RESTATE_TOLERANCE_FIXED: f32 = 1e-2;

/// Each FL-carrying node's α group, running FL and the batch FLs it met over `d` in batches
/// of 16.
fn running_and_batch_fls(net: &Net, d: &f8net::data::Dataset) -> Vec<(usize, f32, Vec<i32>)> {
    let px = d.h * d.w;
    let mut out: Vec<(usize, f32, Vec<i32>)> = net
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Conv { unit, alpha, .. } => Some((*alpha, unit.running_fl.value, vec![])),
            Node::Classifier { fc, alpha, .. } => Some((*alpha, fc.running_fl.value, vec![])),
            _ => None,
        })
        .collect();
    for b in 0..d.labels.len() / 16 {
        let x: Vec<f32> = d.images[b * 16 * px..(b + 1) * 16 * px]
            .iter()
            .map(|&v| v as f32 / 256.0)
            .collect();
        let y: Vec<u32> = d.labels[b * 16..(b + 1) * 16]
            .iter()
            .map(|&l| l as u32)
            .collect();
        let f = net.clone().forward(&x, &y).unwrap();
        for (o, fmt) in out.iter_mut().zip(f.formats().into_iter().flatten()) {
            if let Some(fl) = fmt.0 {
                o.2.push(fl);
            }
        }
    }
    out
}

/// Whether each α group's master (its first member) has its running FL within the batch FLs
/// it meets and every other member has the master's FL.
fn fls_settled(net: &Net, d: &f8net::data::Dataset) -> bool {
    let fls = running_and_batch_fls(net, d);
    fls.iter().enumerate().all(|(i, (alpha, r, b))| {
        match fls[..i].iter().find(|(a, _, _)| a == alpha) {
            Some((_, master, _)) => r == master,
            None => {
                b.is_empty()
                    || (*b.iter().min().unwrap() as f32 - 1e-3 <= *r
                        && *r <= *b.iter().max().unwrap() as f32 + 1e-3)
            }
        }
    })
}

#[test]
fn the_per_channel_start_walks_the_fls_and_restates_the_statistics() {
    let (fp, _, _) = fp_net_beyond_the_clamp();
    let d = data(&mut Rng::new(7), 32);
    let x: Vec<f32> = d.images.iter().map(|&v| v as f32 / 256.0).collect();
    let mut start = fp.clone();
    start.prepare_fixed_start(Source::Float);
    start.precision = Precision::Fixed;
    start.set_weight_format(WeightFormat::PerChannel);
    assert!(
        !fls_settled(&start, &d),
        "an FP checkpoint's FLs (6) must have to walk"
    );
    // The walk moves the running FLs to the batch FLs and nothing else.
    let mut walked = start.clone();
    assert!(walked.walk_fls(&d, FL_WALK_BATCHES, 16).unwrap() > 0);
    assert!(fls_settled(&walked, &d));
    let mut back = walked.clone();
    for (a, b) in back.nodes.iter_mut().zip(&start.nodes) {
        match (a, b) {
            (Node::Conv { unit: a, .. }, Node::Conv { unit: b, .. }) => a.running_fl = b.running_fl,
            (Node::Classifier { fc: a, .. }, Node::Classifier { fc: b, .. }) => {
                a.running_fl = b.running_fl
            }
            _ => {}
        }
    }
    assert_eq!(back, start);
    // Re-stated, the evaluation is kept and a training-mode forward finds the same statistics.
    let how = BnEstimate {
        images: 32,
        batch: 32,
    };
    let mut restated = walked.clone();
    restate(&mut restated, &d, how).unwrap();
    let walked_eval = walked.forward_eval(&x, 32).unwrap();
    let kept = rel_diff(&restated.forward_eval(&x, 32).unwrap(), &walked_eval);
    assert!(kept <= RESTATE_TOLERANCE, "logits moved by {kept}");
    let mut again = restated.clone();
    reestimate(&mut again, &d, how).unwrap();
    let fixed_point = stats_diff(&running(&again), &running(&restated));
    assert!(fixed_point <= RESTATE_TOLERANCE_FIXED, "{fixed_point}");
    // Without the re-statement the clamp left statistics that training does not compute.
    let mut plain = walked.clone();
    reestimate(&mut plain, &d, how).unwrap();
    let moved = stats_diff(&running(&plain), &running(&walked));
    assert!(moved > 10.0 * RESTATE_TOLERANCE_FIXED, "{moved}");
}
