//! The conversion schemes of `f8net quantize`: how weight and activation FLs are chosen, PACT
//! on ReLU6 outputs, bias correction, and the two named presets (the built-in model's, the paper's).

/// How weight fractional lengths are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFl {
    /// The paper's rule: one FL per layer from σ of the effective weight (0..=7).
    PerLayerStd,
    /// One FL per layer by min-RMSE grid search (0..=7).
    PerLayerGrid,
    /// One FL per output channel by grid search over 0..=15 (shift-only per channel).
    PerChannelGrid,
}

/// How activation fractional lengths are chosen on the calibration inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActFl {
    Std,
    Grid,
}

/// Fixed-point PACT on ReLU6 outputs (α = 6: the uint8 code spans [0, 6]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pact {
    Off,
    Relu6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasCorrection {
    Off,
    On,
}

/// The conversion scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantizeOptions {
    pub weight_fl: WeightFl,
    pub act_fl: ActFl,
    pub pact: Pact,
    pub bias_correction: BiasCorrection,
}

impl QuantizeOptions {
    /// The built-in model's scheme (see the README for the measured reasons).
    pub fn builtin() -> Self {
        QuantizeOptions {
            weight_fl: WeightFl::PerChannelGrid,
            act_fl: ActFl::Grid,
            pact: Pact::Off,
            bias_correction: BiasCorrection::On,
        }
    }

    /// The paper's per-layer σ rule, nothing else.
    pub fn paper() -> Self {
        QuantizeOptions {
            weight_fl: WeightFl::PerLayerStd,
            act_fl: ActFl::Std,
            pact: Pact::Off,
            bias_correction: BiasCorrection::Off,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "weights {:?}, activations {:?}, PACT {:?}, bias correction {:?}",
            self.weight_fl, self.act_fl, self.pact, self.bias_correction
        )
    }
}
