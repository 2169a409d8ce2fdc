//! Where `f8net train` runs its steps: the CPU reference (`Net::forward/backward/sgd`) or the GPU
//! recording of the same step (`train::gpu::GpuNet`). `auto` takes a hardware GPU and falls back
//! to the CPU on a software adapter (lavapipe runs a ResNet-20 w0.5 batch-64 step in ~12 s
//! against ~1 s on two CPU cores) or when there is no adapter. The `Net` stays the host copy:
//! on the GPU it is brought up to date (`sync`) before anything reads it — evaluation, export,
//! checkpoints.

use super::gpu::GpuNet;
use super::net::Net;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::reference::optim::WeightDecayScheme;

/// The `--backend` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A hardware GPU when there is one, else the CPU.
    Auto,
    Cpu,
    /// The GPU, even a software one.
    Gpu,
}

/// The adapter to train on (None: the CPU), and a line saying what was chosen and why.
pub fn choose(backend: Backend) -> Result<(Option<Gpu>, String)> {
    match backend {
        Backend::Cpu => Ok((None, "training on the CPU reference (--backend cpu)".into())),
        Backend::Gpu => {
            let gpu = Gpu::new()?;
            let line = format!("training on the GPU: {}", gpu.adapter());
            Ok((Some(gpu), line))
        }
        Backend::Auto => match Gpu::new() {
            Ok(gpu) if !gpu.is_software() => {
                let line = format!("training on the GPU: {}", gpu.adapter());
                Ok((Some(gpu), line))
            }
            Ok(gpu) => Ok((
                None,
                format!(
                    "training on the CPU reference: the only adapter is a software one ({}); \
                     --backend gpu forces it",
                    gpu.adapter()
                ),
            )),
            Err(e) => Ok((None, format!("training on the CPU reference ({e})"))),
        },
    }
}

/// One training step's way of running.
pub enum Stepper<'g> {
    Cpu,
    Gpu(Box<GpuNet<'g>>),
}

impl<'g> Stepper<'g> {
    /// A stepper for `net` on `gpu` (None: the CPU).
    pub fn new(gpu: Option<&'g Gpu>, net: &Net) -> Result<Stepper<'g>> {
        Ok(match gpu {
            Some(g) => Stepper::Gpu(Box::new(GpuNet::new(g, net)?)),
            None => Stepper::Cpu,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self, net: &Net) -> u64 {
        match self {
            Stepper::Cpu => net.step,
            Stepper::Gpu(g) => g.step(),
        }
    }

    /// One training step: the loss and the logits `[n][classes]` of the forward pass. A
    /// non-finite loss is an error naming the step, before any update.
    pub fn step(
        &mut self,
        net: &mut Net,
        x: &[f32],
        labels: &[u32],
        lr: f32,
        wd: f32,
        scheme: WeightDecayScheme,
    ) -> Result<(f32, Vec<f32>)> {
        match self {
            Stepper::Cpu => net.train_step_logits(x, labels, lr, wd, scheme),
            Stepper::Gpu(g) => {
                let loss = g.train_step(x, labels, lr, wd, scheme)?;
                Ok((loss, g.logits()?))
            }
        }
    }

    /// Bring the host network up to date (a no-op on the CPU).
    pub fn sync(&self, net: &mut Net) -> Result<()> {
        match self {
            Stepper::Cpu => Ok(()),
            Stepper::Gpu(g) => g.download(net),
        }
    }
}
