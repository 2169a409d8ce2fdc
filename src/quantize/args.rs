//! The options of `f8net quantize` (clap), shared by its two inputs: a float model file
//! (EfficientNet-Lite0 safetensors, calibrated on a folder of photos; `main.rs`) and an f8net
//! training checkpoint (calibrated on a data set; [`super::from_checkpoint`]).

use super::{ActFl, BiasCorrection, Pact, QuantizeOptions, WeightFl};
use std::path::PathBuf;

/// One weight FL per output channel or per layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightScheme {
    PerChannel,
    PerLayer,
}

/// Grid search (min RMSE) or the paper's σ rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlRule {
    Grid,
    Std,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Options of `f8net quantize`.
#[derive(Clone, Debug, clap::Args)]
pub struct QuantizeArgs {
    /// A float model (EfficientNet-Lite0 safetensors) or an f8net training checkpoint
    /// (`checkpoint.safetensors` of `f8net train --mode fp`: post-training quantization).
    pub input: PathBuf,
    /// Calibration images: a folder of photos for a float model; for a checkpoint a data set
    /// folder (IDX files or one folder per class under `train/`) or `fashion-mnist`.
    #[arg(long)]
    pub calib: PathBuf,
    /// The integer model to write (atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// At most this many calibration images (a data set: spread evenly over its training
    /// split; a photo folder: the first ones).
    #[arg(long, default_value_t = 512)]
    pub calib_count: usize,
    /// A checkpoint's architecture, for checkpoints that do not record it.
    #[arg(long)]
    pub arch: Option<String>,
    /// A checkpoint's width multiplier, for checkpoints that do not record it.
    #[arg(long)]
    pub width: Option<f32>,
    #[arg(long, value_enum, default_value = "per-channel")]
    pub weights: WeightScheme,
    /// Rule for per-layer weight FLs (per-channel always uses grid search).
    #[arg(long, value_enum, default_value = "grid")]
    pub weight_fl: FlRule,
    #[arg(long, value_enum, default_value = "grid")]
    pub act_fl: FlRule,
    /// Fixed-point PACT codes (uint8 spanning [0, 6]) on ReLU6 outputs: the PACT-clipped
    /// tensors of a checkpoint, or EfficientNet's ReLU6s (α = 6).
    #[arg(long, value_enum, default_value = "off")]
    pub pact: OnOff,
    #[arg(long, value_enum, default_value = "on")]
    pub bias_correction: OnOff,
}

impl QuantizeArgs {
    /// The conversion scheme the flags select.
    pub fn options(&self) -> QuantizeOptions {
        QuantizeOptions {
            weight_fl: match (self.weights, self.weight_fl) {
                (WeightScheme::PerChannel, _) => WeightFl::PerChannelGrid,
                (WeightScheme::PerLayer, FlRule::Grid) => WeightFl::PerLayerGrid,
                (WeightScheme::PerLayer, FlRule::Std) => WeightFl::PerLayerStd,
            },
            act_fl: match self.act_fl {
                FlRule::Grid => ActFl::Grid,
                FlRule::Std => ActFl::Std,
            },
            pact: match self.pact {
                OnOff::On => Pact::Relu6,
                OnOff::Off => Pact::Off,
            },
            bias_correction: match self.bias_correction {
                OnOff::On => BiasCorrection::On,
                OnOff::Off => BiasCorrection::Off,
            },
        }
    }
}
