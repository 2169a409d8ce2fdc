//! Seeded, resumable mini-batches: a per-epoch shuffle, augmentation, and the F8Net input
//! convention (pixel byte k → k/256, i.e. uint8 at FL 8; F8NET.md §2.7).
//!
//! Epoch `e` visits the images in the order `SplitMix64::derive(seed, 0, e).shuffle(0..N)` (or
//! 0..N without shuffling). Augmentation draws come from one stream per epoch,
//! `SplitMix64::derive(seed, 1, e)`, consumed image by image in visiting order. A `LoaderState`
//! (seed, epoch, position, augmentation RNG state, data set length) captures everything, so
//! `Loader::from_state` continues with exactly the batches the saved loader would have produced.

use super::augment::{self, Augment};
use super::rng::SplitMix64;
use super::Dataset;
use crate::error::{Error, Result};

/// How batches are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderConfig {
    pub batch: usize,
    pub seed: u64,
    /// Shuffle every epoch (training); visit in data set order otherwise (evaluation).
    pub shuffle: bool,
    pub augment: Augment,
    /// Skip the last, smaller batch of an epoch.
    pub drop_last: bool,
}

impl LoaderConfig {
    /// Training: shuffled, crop-with-padding `pad` and flip, full batches only.
    pub fn train(batch: usize, seed: u64, pad: usize) -> LoaderConfig {
        LoaderConfig {
            batch,
            seed,
            shuffle: true,
            augment: Augment::crop_flip(pad),
            drop_last: true,
        }
    }
    /// Evaluation: data set order, no augmentation, every image once.
    pub fn eval(batch: usize) -> LoaderConfig {
        LoaderConfig {
            batch,
            seed: 0,
            shuffle: false,
            augment: Augment::NONE,
            drop_last: false,
        }
    }
}

/// Where a loader stands; save it with a checkpoint and give it to `Loader::from_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderState {
    pub seed: u64,
    pub epoch: u64,
    /// Images of this epoch already handed out.
    pub position: usize,
    /// The augmentation generator's state.
    pub rng: u64,
    /// Length of the data set it was made for (checked on resume).
    pub len: usize,
}

/// One mini-batch, NHWC.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The (augmented) pixel bytes, `n·h·w·c`.
    pub bytes: Vec<u8>,
    /// The network input: `bytes[i] / 256` (exact in f32).
    pub inputs: Vec<f32>,
    pub labels: Vec<u8>,
    /// Index of each image in the data set.
    pub indices: Vec<usize>,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// The F8Net input convention: pixel byte k → k/256 (uint8 with FL 8).
pub fn to_inputs(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&k| f32::from(k) / 256.0).collect()
}

/// Batches over a borrowed data set.
#[derive(Clone, Debug)]
pub struct Loader<'a> {
    data: &'a Dataset,
    cfg: LoaderConfig,
    epoch: u64,
    position: usize,
    order: Vec<usize>,
    rng: SplitMix64,
}

const ORDER_STREAM: u64 = 0;
const AUGMENT_STREAM: u64 = 1;

fn epoch_order(len: usize, cfg: &LoaderConfig, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if cfg.shuffle {
        SplitMix64::derive(cfg.seed, ORDER_STREAM, epoch).shuffle(&mut order);
    }
    order
}

impl<'a> Loader<'a> {
    /// A loader at the start of epoch 0.
    pub fn new(data: &'a Dataset, cfg: LoaderConfig) -> Result<Loader<'a>> {
        data.validate()?;
        if cfg.batch == 0 {
            return Err(Error::range("Loader", "batch size must be at least 1"));
        }
        if data.is_empty() {
            return Err(Error::range("Loader", "the data set has no images"));
        }
        if cfg.drop_last && cfg.batch > data.len() {
            return Err(Error::range(
                "Loader",
                format!(
                    "batch size {} is larger than the {} images of the data set",
                    cfg.batch,
                    data.len()
                ),
            ));
        }
        Ok(Loader {
            data,
            cfg,
            epoch: 0,
            position: 0,
            order: epoch_order(data.len(), &cfg, 0),
            rng: SplitMix64::derive(cfg.seed, AUGMENT_STREAM, 0),
        })
    }

    /// Continue from a saved state; the data set and the seed must be the ones it was saved with
    /// (both checked), and `cfg` should be the saved config (the position counts images, so a
    /// different batch size still resumes at the same image).
    pub fn from_state(data: &'a Dataset, cfg: LoaderConfig, state: LoaderState) -> Result<Self> {
        if state.len != data.len() {
            return Err(Error::range(
                "Loader::from_state",
                format!(
                    "state was saved for a data set of {} images, this one has {}",
                    state.len,
                    data.len()
                ),
            ));
        }
        if state.seed != cfg.seed {
            return Err(Error::range(
                "Loader::from_state",
                format!("state has seed {}, the config {}", state.seed, cfg.seed),
            ));
        }
        if state.position > data.len() {
            return Err(Error::range(
                "Loader::from_state",
                format!(
                    "position {} is past the end ({})",
                    state.position,
                    data.len()
                ),
            ));
        }
        let mut loader = Loader::new(data, cfg)?;
        loader.set_epoch(state.epoch);
        loader.position = state.position;
        loader.rng = SplitMix64::new(state.rng);
        Ok(loader)
    }

    pub fn state(&self) -> LoaderState {
        LoaderState {
            seed: self.cfg.seed,
            epoch: self.epoch,
            position: self.position,
            rng: self.rng.state(),
            len: self.data.len(),
        }
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn position(&self) -> usize {
        self.position
    }
    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.data.len();
        if self.cfg.drop_last {
            n / self.cfg.batch
        } else {
            n.div_ceil(self.cfg.batch)
        }
    }
    /// The visiting order of the current epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Go to the start of epoch `epoch`.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.position = 0;
        self.order = epoch_order(self.data.len(), &self.cfg, epoch);
        self.rng = SplitMix64::derive(self.cfg.seed, AUGMENT_STREAM, epoch);
    }

    /// Go to the start of the next epoch.
    pub fn next_epoch(&mut self) {
        self.set_epoch(self.epoch + 1);
    }

    /// The next batch of the current epoch, or `None` when the epoch is done (then call
    /// `next_epoch`).
    pub fn next_batch(&mut self) -> Option<Batch> {
        let remaining = self.data.len() - self.position;
        let n = remaining.min(self.cfg.batch);
        if n == 0 || (self.cfg.drop_last && n < self.cfg.batch) {
            return None;
        }
        let d = self.data;
        let size = d.image_size();
        let mut bytes = vec![0u8; n * size];
        let mut labels = Vec::with_capacity(n);
        let indices = self.order[self.position..self.position + n].to_vec();
        for (out, &i) in bytes.chunks_exact_mut(size).zip(&indices) {
            let src = &d.images[i * size..(i + 1) * size];
            augment::apply(&self.cfg.augment, src, out, (d.h, d.w, d.c), &mut self.rng);
            labels.push(d.labels[i]);
        }
        self.position += n;
        Some(Batch {
            inputs: to_inputs(&bytes),
            bytes,
            labels,
            indices,
            n,
            h: d.h,
            w: d.w,
            c: d.c,
        })
    }
}
