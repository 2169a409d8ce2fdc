//! Running input FLs for the F8Net start from an FP checkpoint, whose FLs are all 6 (the
//! initial value of F8NET.md §3.4).
//!
//! Under F8Net's rule the batch FL of a layer whose input has real-unit σ and clip α is
//! `F_b = floor(log2(c·2^F_r·α/(255·σ)))` (c = 70 unsigned, 40 signed, §3.2), i.e.
//! `F_b = F_r + k` with k fixed by σ/α. The running FL follows F_b, so each layer falls in one of
//! three **bands**: k < 0 (σ/α above the band) walks to FL 0, k > 0 to the format's maximum, and
//! k = 0 keeps *any* FL. Training uses F_b to quantize and F_r for the scale, so until F_r has
//! walked there (the EMA needs ~25 steps from 6 to 0) the real clip is 2^(F_r − F_b)·α, and a
//! layer can run unclipped up to 64·α.
//!
//! Where the free layers sit matters: a unit's W̃ scales by 2^(F_in − F_out) against the FP
//! network (which had every F at 6; a fixed-input stem by 2^(6 − F_out)), and a weight FL in
//! 0..=7 cannot absorb large gaps. MobileNet-V1 w0.25 walks to FLs 0,0,0 | 6,6,6 | 8 … — its
//! second depthwise layer's W̃ shrinks 64× to σ 0.008 at FL 7, about two codes — and its eval
//! accuracy falls from 0.82 to 0.23 (MobileNet-V2 w0.5: 0.83 to 0.10). `calibrate_fls` probes
//! the bands with one training forward at F_r = 4, puts the bound layers at their bound, places
//! the free ones to minimize Σ (F_in − F_out)² over the units (`balance`) — a choice the rule
//! itself leaves open, and one it keeps — and then iterates F_r ← F_b to a fixed point of the
//! training forward (MobileNet-V1: 0.80 at eval with these FLs). BN running statistics are left
//! as loaded.

use crate::error::Result;
use crate::fixed::{FlRange, Signedness};
use crate::fraclen::RunningFl;
use crate::train::conv_bn::InputQuant;
use crate::train::net::{Net, Node};

/// Fixed-point passes after the placement, at most (each moves an FL by its offset).
pub const CALIBRATION_PASSES: usize = 10;

/// The running FL every quantizing node gets for the band probe.
const PROBE_FL: i32 = 4;

/// The FL of every input in the FP network (its quantizers' fixed input format).
const FLOAT_FL: i32 = 6;

/// Where F8Net's rule takes a layer's input FL (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// σ/α above the band: FL 0.
    Low,
    /// σ/α below the band: the format's maximum, given.
    High(i32),
    /// Inside: any FL up to the given maximum is kept.
    Free(i32),
}

impl Band {
    /// The band of a node whose batch FL was `batch` with the running FL at `probe`.
    pub fn from_probe(batch: i32, probe: i32, max: i32) -> Band {
        match batch.cmp(&probe) {
            std::cmp::Ordering::Less => Band::Low,
            std::cmp::Ordering::Greater => Band::High(max),
            std::cmp::Ordering::Equal => Band::Free(max),
        }
    }
}

/// A unit whose W̃ carries `2^(F_in − F_out)`: its own input FL (None: the fixed 8-bit image,
/// whose scale is 1 in both networks, counted as the FP FL) and the node whose scale divides
/// its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub producer: Option<usize>,
    pub consumer: usize,
}

/// FLs for the nodes with a band: bound ones at their bound, free ones placed by coordinate
/// descent (from the FP FL, strict improvements only, so deterministic) to minimize
/// Σ (F_in − F_out)² over `edges`.
pub fn balance(bands: &[Option<Band>], edges: &[Edge]) -> Vec<Option<i32>> {
    let mut fl: Vec<Option<i32>> = bands
        .iter()
        .map(|b| {
            b.map(|b| match b {
                Band::Low => 0,
                Band::High(max) => max,
                Band::Free(max) => FLOAT_FL.min(max),
            })
        })
        .collect();
    let cost = |fl: &[Option<i32>]| -> i64 {
        let at = |i: Option<usize>| i.and_then(|i| fl[i]).unwrap_or(FLOAT_FL) as i64;
        edges
            .iter()
            .map(|e| (at(e.producer) - at(Some(e.consumer))).pow(2))
            .sum()
    };
    for _ in 0..100 {
        let mut changed = false;
        for (i, band) in bands.iter().enumerate() {
            let Some(Band::Free(max)) = *band else {
                continue;
            };
            let mut best = (cost(&fl), fl[i]);
            for v in 0..=max {
                let old = fl[i].replace(v);
                let c = cost(&fl);
                fl[i] = old;
                if c < best.0 {
                    best = (c, Some(v));
                }
            }
            if best.1 != fl[i] {
                fl[i] = best.1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    fl
}

impl Net {
    /// Calibrate every running input FL on the batch `x` (see the module docs); returns the
    /// fixed-point passes it took after the placement (`CALIBRATION_PASSES` if FLs still moved).
    pub fn calibrate_fls(&mut self, x: &[f32], labels: &[u32]) -> Result<usize> {
        let bn: Vec<(Vec<f32>, Vec<f32>)> =
            self.units().map(|(m, v)| (m.clone(), v.clone())).collect();
        let maxima: Vec<Option<i32>> = self
            .nodes
            .iter_mut()
            .map(|n| quantizer(n).map(|(_, s)| FlRange::Paper.max_fl(s)))
            .collect();
        let mut probe = self.clone();
        probe.set_fls(
            &maxima
                .iter()
                .map(|m| m.map(|_| PROBE_FL))
                .collect::<Vec<_>>(),
        );
        let batch = probe.batch_fls(x, labels)?;
        let bands: Vec<Option<Band>> = maxima
            .iter()
            .zip(&batch)
            .map(|(m, b)| Some(Band::from_probe((*b)?, PROBE_FL, (*m)?)))
            .collect();
        self.set_fls(&balance(&bands, &self.edges()));
        let mut passes = CALIBRATION_PASSES;
        for pass in 1..=CALIBRATION_PASSES {
            let before = self.running_fls();
            let batch = self.batch_fls(x, labels)?;
            self.set_fls(&batch);
            if self.running_fls() == before {
                passes = pass;
                break;
            }
        }
        for ((mean, var), (m, v)) in self.units().zip(bn) {
            (*mean, *var) = (m, v);
        }
        Ok(passes)
    }

    /// The batch input FL of every node of a training forward on `x` (None: no quantizer).
    fn batch_fls(&mut self, x: &[f32], labels: &[u32]) -> Result<Vec<Option<i32>>> {
        Ok(self
            .forward(x, labels)?
            .formats()
            .into_iter()
            .map(|f| f.and_then(|(x_fl, _)| x_fl))
            .collect())
    }

    /// Set the running FL of every node given one.
    fn set_fls(&mut self, fls: &[Option<i32>]) {
        for (node, fl) in self.nodes.iter_mut().zip(fls) {
            if let (Some((r, _)), Some(fl)) = (quantizer(node), fl) {
                r.value = *fl as f32;
            }
        }
    }

    /// The rounded running FL of every node that quantizes its input.
    fn running_fls(&mut self) -> Vec<Option<i32>> {
        self.nodes
            .iter_mut()
            .map(|n| quantizer(n).map(|(r, s)| r.current(s)))
            .collect()
    }

    /// The BN running statistics of every unit.
    fn units(&mut self) -> impl Iterator<Item = (&mut Vec<f32>, &mut Vec<f32>)> {
        self.nodes.iter_mut().filter_map(|n| match n {
            Node::Conv { unit, .. } => Some((&mut unit.running_mean, &mut unit.running_var)),
            _ => None,
        })
    }

    /// Every unit with the scale that divides its output.
    fn edges(&self) -> Vec<Edge> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match n {
                Node::Conv {
                    unit,
                    next: Some(j),
                    ..
                } => Some(Edge {
                    producer: (unit.input != InputQuant::Fixed).then_some(i),
                    consumer: *j,
                }),
                _ => None,
            })
            .collect()
    }
}

/// The running input FL of a node that quantizes its input, and its signedness.
fn quantizer(node: &mut Node) -> Option<(&mut RunningFl, Signedness)> {
    let (r, signedness) = match node {
        Node::Conv { unit, .. } => match unit.input {
            InputQuant::Quantized(s) => (&mut unit.running_fl, s),
            InputQuant::Fixed => return None,
        },
        Node::Classifier { fc, .. } => (&mut fc.running_fl, Signedness::Unsigned),
        _ => return None,
    };
    Some((r, signedness))
}
