//! BN re-estimation (`train::bn_stats`): the running statistics become the (unbiased) batch
//! statistics of training-mode forwards, averaged over batches, and nothing else changes.

use crate::common::*;
use crate::train_net::{batch, tiny};
use f8net::data::Dataset;
use f8net::reference::optim::WeightDecayScheme;
use f8net::train::bn_stats::{reestimate, BnEstimate};
use f8net::train::conv_bn::Precision;
use f8net::train::eval::top1;
use f8net::train::net::{Net, Node};

/// `n` images of the tiny net's task as a data set (pixel k/256 is byte k).
fn data(rng: &mut Rng, n: usize) -> Dataset {
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
fn running(net: &Net) -> Vec<(Vec<f32>, Vec<f32>)> {
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
