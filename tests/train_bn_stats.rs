//! BN re-estimation (`train::bn_stats`): the running statistics become the (unbiased) batch
//! statistics of training-mode forwards, averaged over batches, and nothing else changes; and
//! the re-statement, which keeps the evaluation and makes it the training forward's.

use crate::common::*;
use crate::train_net::{batch, tiny};
use f8net::data::Dataset;
use f8net::reference::optim::WeightDecayScheme;
use f8net::train::bn_stats::{reestimate, restate, BnEstimate};
use f8net::train::conv_bn::Precision;
use f8net::train::eval::top1;
use f8net::train::net::{Net, Node};

/// `n` images of the tiny net's task as a data set (pixel k/256 is byte k).
pub(crate) fn data(rng: &mut Rng, n: usize) -> Dataset {
    let (x, y) = batch(rng, n);
    Dataset {
        images: x.iter().map(|v| (v * 256.0) as u8).collect(),
        labels: y.iter().map(|&l| l as u8).collect(),
        h: 8,
        w: 8,
        c: 1,
        classes: 2,
        class_names: vec!["0".into(), "1".into()],
    }
}

fn inputs(d: &Dataset) -> (Vec<f32>, Vec<u32>) {
    (
        d.images.iter().map(|&b| b as f32 / 256.0).collect(),
        d.labels.iter().map(|&l| l as u32).collect(),
    )
}

fn half(d: &Dataset, which: usize) -> Dataset {
    let n = d.labels.len() / 2;
    let px = d.h * d.w * d.c;
    Dataset {
        images: d.images[which * n * px..(which + 1) * n * px].to_vec(),
        labels: d.labels[which * n..(which + 1) * n].to_vec(),
        ..d.clone()
    }
}

/// The tiny net after a few steps, with running statistics far from any batch's.
fn trained(precision: Precision) -> Net {
    let mut net = tiny(precision);
    let mut rng = Rng::new(8);
    for _ in 0..5 {
        let (x, y) = batch(&mut rng, 16);
        net.train_step(&x, &y, 0.05, 4e-5, WeightDecayScheme::All)
            .unwrap();
    }
    for node in net.nodes.iter_mut() {
        if let Node::Conv { unit, .. } = node {
            unit.running_mean.iter_mut().for_each(|m| *m = 3.0);
            unit.running_var.iter_mut().for_each(|v| *v = 9.0);
        }
    }
    net
}

/// (running mean, running var) of every conv unit.
pub(crate) fn running(net: &Net) -> Vec<(Vec<f32>, Vec<f32>)> {
    net.nodes
        .iter()
        .filter_map(|n| match n {
            Node::Conv { unit, .. } => Some((unit.running_mean.clone(), unit.running_var.clone())),
            _ => None,
        })
        .collect()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-3),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn one_batch_gives_that_batchs_statistics_and_changes_nothing_else() {
    for precision in [Precision::Float, Precision::Fixed] {
        let d = data(&mut Rng::new(1), 32);
        let net = trained(precision);
        let mut est = net.clone();
        let how = BnEstimate {
            images: 32,
            batch: 32,
        };
        assert_eq!(reestimate(&mut est, &d, how).unwrap(), 32);
        let (x, y) = inputs(&d);
        let f = net.clone().forward(&x, &y).unwrap();
        let want: Vec<_> = f.unit_stats().into_iter().flatten().collect();
        let got = running(&est);
        assert_eq!(got.len(), want.len());
        for ((mean, var), (stats, m)) in got.iter().zip(want) {
            assert!(m > 1);
            close(mean, &stats.mean, "mean");
            let unbiased: Vec<f32> = stats
                .var
                .iter()
                .map(|v| (*v as f64 * m as f64 / (m - 1) as f64) as f32)
                .collect();
            close(var, &unbiased, "var");
        }
        // Put the old statistics back: everything else (weights, α, FLs, step) is as it was.
        for (node, old) in est.nodes.iter_mut().zip(&net.nodes) {
            if let (Node::Conv { unit, .. }, Node::Conv { unit: o, .. }) = (node, old) {
                unit.running_mean = o.running_mean.clone();
                unit.running_var = o.running_var.clone();
            }
        }
        assert_eq!(est, net, "{precision:?}");
    }
}

#[test]
fn batches_are_averaged() {
    let d = data(&mut Rng::new(2), 64);
    let net = trained(Precision::Fixed);
    let per_half = |d: &Dataset| {
        let mut n = net.clone();
        let how = BnEstimate {
            images: 32,
            batch: 32,
        };
        reestimate(&mut n, d, how).unwrap();
        running(&n)
    };
    let (a, b) = (per_half(&half(&d, 0)), per_half(&half(&d, 1)));
    let mut both = net.clone();
    let how = BnEstimate {
        images: 64,
        batch: 32,
    };
    assert_eq!(reestimate(&mut both, &d, how).unwrap(), 64);
    for ((got, a), b) in running(&both).iter().zip(&a).zip(&b) {
        let avg = |x: &[f32], y: &[f32]| -> Vec<f32> {
            x.iter().zip(y).map(|(p, q)| (p + q) / 2.0).collect()
        };
        close(&got.0, &avg(&a.0, &b.0), "mean");
        close(&got.1, &avg(&a.1, &b.1), "var");
    }
    // The statistics differ between the halves, so the average is not just one of them.
    assert_ne!(a, b);
}

#[test]
fn the_evaluation_then_follows_the_training_forward() {
    let d = data(&mut Rng::new(3), 64);
    let (x, y) = inputs(&d);
    let net = trained(Precision::Float);
    let train_top1 = top1(&net.clone().forward(&x, &y).unwrap().logits, 2);
    let agree = |n: &Net| {
        let e = top1(&n.forward_eval(&x, 64).unwrap(), 2);
        e.iter().zip(&train_top1).filter(|(a, b)| a == b).count()
    };
    let mut est = net.clone();
    let how = BnEstimate {
        images: 64,
        batch: 64,
    };
    reestimate(&mut est, &d, how).unwrap();
    let (before, after) = (agree(&net), agree(&est));
    assert_eq!(
        after, 64,
        "re-estimated: {after}/64 agree (before: {before}/64)"
    );
    assert!(
        before < 64,
        "the planted statistics should change the evaluation"
    );
}

#[test]
fn zero_images_keep_the_statistics_and_a_zero_batch_is_refused() {
    let d = data(&mut Rng::new(4), 16);
    let net = trained(Precision::Fixed);
    let mut n = net.clone();
    let none = BnEstimate {
        images: 0,
        batch: 250,
    };
    assert_eq!(reestimate(&mut n, &d, none).unwrap(), 0);
    assert_eq!(n, net);
    let bad = BnEstimate {
        images: 16,
        batch: 0,
    };
    let e = reestimate(&mut n, &d, bad).unwrap_err().to_string();
    assert!(e.contains("--bn-batch"), "{e}");
    assert_eq!(n, net);
    // A data set smaller than the batch is one batch of all of it.
    let all = BnEstimate {
        images: 1000,
        batch: 250,
    };
    assert_eq!(reestimate(&mut n, &d, all).unwrap(), 16);
}

/// Relative tolerance of a re-stated network against the original (logits) and of a
/// re-estimation against the re-stated statistics: float rounding of γ'/σ' against γ/σ, and the
/// evaluation's unbiased variance against training's biased one.
pub(crate) const RESTATE_TOLERANCE: f32 = 1e-3;

/// max |a − b| relative to max(max |b|, 1).
pub(crate) fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The largest relative difference between two sets of running statistics.
pub(crate) fn stats_diff(a: &[(Vec<f32>, Vec<f32>)], b: &[(Vec<f32>, Vec<f32>)]) -> f32 {
    a.iter()
        .zip(b)
        .map(|((am, av), (bm, bv))| rel_diff(am, bm).max(rel_diff(av, bv)))
        .fold(0.0, f32::max)
}

#[test]
fn restating_keeps_the_evaluation_and_is_what_re_estimation_then_finds() {
    let d = data(&mut Rng::new(6), 64);
    let (x, _) = inputs(&d);
    let how = BnEstimate {
        images: 64,
        batch: 64,
    };
    let net = trained(Precision::Float);
    let before = net.forward_eval(&x, 64).unwrap();
    let mut r = net.clone();
    assert_eq!(restate(&mut r, &d, how).unwrap(), 64);
    let moved = rel_diff(&r.forward_eval(&x, 64).unwrap(), &before);
    assert!(moved <= RESTATE_TOLERANCE, "logits moved by {moved}");
    // Only γ, β and the statistics changed.
    for (a, b) in r.nodes.iter().zip(&net.nodes) {
        if let (Node::Conv { unit: a, .. }, Node::Conv { unit: b, .. }) = (a, b) {
            assert_eq!(a.weight, b.weight);
            assert_ne!(a.gamma, b.gamma);
        }
    }
    // A training-mode forward now computes the statistics the evaluation reads.
    let mut again = r.clone();
    reestimate(&mut again, &d, how).unwrap();
    let fixed_point = stats_diff(&running(&again), &running(&r));
    assert!(
        fixed_point <= RESTATE_TOLERANCE,
        "re-estimation moved the re-stated statistics by {fixed_point}"
    );
    // Re-estimating the planted statistics instead changes the evaluation.
    let mut plain = net.clone();
    reestimate(&mut plain, &d, how).unwrap();
    let changed = rel_diff(&plain.forward_eval(&x, 64).unwrap(), &before);
    assert!(changed > 10.0 * RESTATE_TOLERANCE, "{changed}");
}
