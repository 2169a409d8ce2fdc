//! BN re-estimation ("precise BN", Wu & Johnson 2021): every conv unit's running statistics are
//! replaced by the average batch statistics of training-mode forwards over fixed, non-augmented
//! training batches. F8Net's official code meant to do this before testing (`bn_calib`, broken
//! there; F8NET.md §6 calls its lr-0 tiny fine-tuning "pure calibration of BN stats and FLs").
//!
//! Why: a unit's eval fold `W̃ = γ/√(var + eps)·W·s_in/s_out` sets the layer's weight FL and, with
//! sparse channels, is sensitive to `var`. The training EMA (momentum 0.1, ~10 batches of 64
//! augmented images) is a noisy estimate of it; measured on MobileNet-V2 w0.5 after F8Net
//! training, the integer model went from 0.8197 with the EMA to 0.8421 with 40 batches of 250
//! (docs/RESULTS.md). Batches must be large: 40 batches of 64 gave 0.6661.
//!
//! Per channel: `mean = Σ_b μ_b / B` and `var = Σ_b v_b·m/(m − 1) / B` (unbiased per batch of m
//! pixels, as the running variance is). Weights, α, running FLs and the optimizer state are not
//! touched: the forwards run on a copy of the network, on the CPU reference whatever backend
//! trained it (MobileNet-V1 w0.25: 8.7 s for 10,000 images on two cores).
//!
//! `restate` is the F8Net start's variant: the statistics of y0 under the *eval* forward, with γ
//! and β changed so that the eval function is kept (see there).

use super::conv_bn::BN_EPS;
use super::net::{Net, Node};
use crate::data::{Dataset, Loader, LoaderConfig};
use crate::error::{Error, Result};
use crate::reference::fold::FoldStats;

/// How the statistics are re-estimated: `images` training images (0: keep the running
/// statistics) in order, without augmentation, in batches of `batch` (at most the data set);
/// a last, smaller batch is left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnEstimate {
    pub images: usize,
    pub batch: usize,
}

impl BnEstimate {
    /// `f8net train` and `f8net eval`'s default: 10,000 images in batches of 250.
    pub const DEFAULT: BnEstimate = BnEstimate {
        images: 10_000,
        batch: 250,
    };

    /// The settings of `--bn-images` and `--bn-batch`, checked (`train` and `eval` call this
    /// before any work, so a bad value fails at once).
    pub fn new(images: usize, batch: usize) -> Result<BnEstimate> {
        let how = BnEstimate { images, batch };
        how.check()?;
        Ok(how)
    }

    fn check(&self) -> Result<()> {
        if self.images > 0 && self.batch == 0 {
            return Err(Error::range(
                "bn_stats",
                "--bn-batch must be at least 1 (or --bn-images 0)",
            ));
        }
        Ok(())
    }
}

/// Per conv node: mean and (unbiased) variance sums.
type Sums = Vec<Option<(Vec<f64>, Vec<f64>)>>;

/// Per conv node (None for other nodes): the average mean and variance.
type Averages = Vec<Option<(Vec<f32>, Vec<f32>)>>;

/// The average batch statistics (module docs) of every conv node over `how`'s batches, with
/// `stats_of` giving a batch's per-node statistics and pixel counts; None when `how.images` is 0.
fn average_stats(
    net: &Net,
    data: &Dataset,
    how: BnEstimate,
    stats_of: impl Fn(&Net, &[f32], &[u32]) -> Result<Vec<Option<(FoldStats, usize)>>>,
) -> Result<Option<(Averages, usize)>> {
    how.check()?;
    if how.images == 0 {
        return Ok(None);
    }
    let batch = how.batch.min(how.images).min(data.len().max(1));
    let mut loader = Loader::new(data, LoaderConfig::eval(batch))?;
    let mut sums: Sums = vec![None; net.nodes.len()];
    let (mut used, mut batches) = (0, 0usize);
    while used + batch <= how.images {
        let Some(b) = loader.next_batch() else { break };
        if b.n < batch {
            break;
        }
        let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
        for (sum, unit) in sums.iter_mut().zip(stats_of(net, &b.inputs, &labels)?) {
            let Some((stats, m)) = unit else { continue };
            let unbiased = if m > 1 {
                m as f64 / (m - 1) as f64
            } else {
                1.0
            };
            let c = stats.mean.len();
            let (means, vars) = sum.get_or_insert_with(|| (vec![0.0; c], vec![0.0; c]));
            for ch in 0..c {
                means[ch] += stats.mean[ch] as f64;
                vars[ch] += stats.var[ch] as f64 * unbiased;
            }
        }
        used += b.n;
        batches += 1;
    }
    if batches == 0 {
        return Err(Error::range(
            "bn_stats",
            format!("the training set has fewer than {batch} images for one re-estimation batch"),
        ));
    }
    let average = |v: Vec<f64>| v.iter().map(|x| (x / batches as f64) as f32).collect();
    let stats = sums
        .into_iter()
        .map(|s| s.map(|(m, v)| (average(m), average(v))))
        .collect();
    Ok(Some((stats, used)))
}

/// Re-estimate `net`'s BN running statistics on `data` (see the module docs); returns the
/// number of images used (0: nothing changed).
pub fn reestimate(net: &mut Net, data: &Dataset, how: BnEstimate) -> Result<usize> {
    let training = |net: &Net, x: &[f32], labels: &[u32]| {
        let f = net.clone().forward(x, labels)?;
        Ok(f.unit_stats()
            .into_iter()
            .map(|u| u.map(|(s, m)| (s.clone(), m)))
            .collect())
    };
    let Some((stats, used)) = average_stats(net, data, how, training)? else {
        return Ok(0);
    };
    for (node, s) in net.nodes.iter_mut().zip(stats) {
        if let (Node::Conv { unit, .. }, Some((mean, var))) = (node, s) {
            unit.running_mean = mean;
            unit.running_var = var;
        }
    }
    Ok(used)
}

/// Re-state `net`'s BN statistics as those of its own y0 at eval, keeping the eval function:
/// with the running (μ, σ) and the new (μ', σ') of a unit (σ = √(var + eps)),
/// `γ' = γ·σ'/σ` and `β' = β − γ·(μ − μ')/σ`, so that `γ'/σ' = γ/σ` and
/// `β' − γ'·μ'/σ' = β − γ·μ/σ`: the folded W̃ and bias are what they were.
///
/// Why: at the F8Net start (`train::fp_start`) the FP weight clamp and the 8-bit inputs change
/// y0 = conv(x_q, W), so the loaded running statistics are no longer the ones a training-mode
/// forward computes. Training (batch statistics) then runs another network than the eval, and
/// re-estimating the statistics alone loses what the start kept: MobileNet-V1 w0.25 after 15
/// FP epochs, 8-bit eval 0.8726, the same after re-estimation 0.6672 (docs/RESULTS.md). Returns
/// the images used (0: nothing changed).
pub fn restate(net: &mut Net, data: &Dataset, how: BnEstimate) -> Result<usize> {
    let eval = |net: &Net, x: &[f32], labels: &[u32]| {
        let n = labels.len();
        let tensors = net.eval_tensors(x, n)?;
        let shapes = net.tensor_shapes(n)?;
        let mut out = Vec::with_capacity(net.nodes.len());
        for (i, node) in net.nodes.iter().enumerate() {
            out.push(match node {
                Node::Conv { input, unit, .. } => Some(unit.eval_y0_stats(
                    &tensors[*input],
                    shapes[*input],
                    net.node_scale(i),
                    net.precision,
                )?),
                _ => None,
            });
        }
        Ok(out)
    };
    let Some((stats, used)) = average_stats(net, data, how, eval)? else {
        return Ok(0);
    };
    for (node, s) in net.nodes.iter_mut().zip(stats) {
        let (Node::Conv { unit, .. }, Some((mean, var))) = (node, s) else {
            continue;
        };
        let old = unit.running_stats();
        for ch in 0..unit.cout {
            let sigma = (var[ch] + BN_EPS).sqrt();
            unit.beta[ch] -= unit.gamma[ch] * (old.mean[ch] - mean[ch]) / old.sigma[ch];
            unit.gamma[ch] *= sigma / old.sigma[ch];
        }
        unit.running_mean = mean;
        unit.running_var = var;
    }
    Ok(used)
}
