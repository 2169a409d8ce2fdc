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

use super::net::{Net, Node};
use crate::data::{Dataset, Loader, LoaderConfig};
use crate::error::{Error, Result};

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

/// Re-estimate `net`'s BN running statistics on `data` (see the module docs); returns the
/// number of images used (0: nothing changed).
pub fn reestimate(net: &mut Net, data: &Dataset, how: BnEstimate) -> Result<usize> {
    how.check()?;
    if how.images == 0 {
        return Ok(0);
    }
    let batch = how.batch.min(how.images).min(data.len().max(1));
    let mut loader = Loader::new(data, LoaderConfig::eval(batch))?;
    let mut sums: Vec<Option<(Vec<f64>, Vec<f64>)>> = vec![None; net.nodes.len()];
    let (mut used, mut batches) = (0, 0usize);
    while used + batch <= how.images {
        let Some(b) = loader.next_batch() else { break };
        if b.n < batch {
            break;
        }
        let labels: Vec<u32> = b.labels.iter().map(|&l| l as u32).collect();
        let f = net.clone().forward(&b.inputs, &labels)?;
        for (sum, unit) in sums.iter_mut().zip(f.unit_stats()) {
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
    for (node, sum) in net.nodes.iter_mut().zip(sums) {
        if let (Node::Conv { unit, .. }, Some((means, vars))) = (node, sum) {
            unit.running_mean = means.iter().map(|v| (v / batches as f64) as f32).collect();
            unit.running_var = vars.iter().map(|v| (v / batches as f64) as f32).collect();
        }
    }
    Ok(used)
}
