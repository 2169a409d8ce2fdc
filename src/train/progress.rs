//! Training progress: an indicatif bar on a terminal, else (logs, nohup) one plain line every
//! ~10 % of an epoch with the step, images/s, ETA, loss and accuracy.

use super::run::EpochStats;
use std::io::IsTerminal;
use std::time::Instant;

/// A progress bar on a terminal, else a plain line every ~10 % of the epoch.
pub enum Progress {
    Bar(indicatif::ProgressBar),
    Lines {
        every: usize,
        start: Instant,
        from: usize,
    },
}

impl Progress {
    pub fn new(epoch: u64, epochs: u64, per_epoch: usize, done: usize) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines {
                every: per_epoch.div_ceil(10).max(1),
                start: Instant::now(),
                from: done,
            };
        }
        let bar = indicatif::ProgressBar::new(per_epoch as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix} [{bar:25}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{}/{epochs}", epoch + 1));
        bar.set_position(done as u64);
        Progress::Bar(bar)
    }

    /// Step `done` of `total` of epoch `epoch` (0-based), batches of `batch`, finished.
    pub fn step(
        &self,
        (epoch, epochs): (u64, u64),
        (done, total, batch): (usize, usize, usize),
        s: &EpochStats,
    ) {
        let msg = format!("loss {:.3} acc {:.3}", s.loss(), s.accuracy());
        match self {
            Progress::Bar(bar) => {
                bar.set_position(done as u64);
                bar.set_message(msg);
            }
            Progress::Lines { every, start, from } => {
                if done % every != 0 && done != total {
                    return;
                }
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                let per_step = secs / done.saturating_sub(*from).max(1) as f64;
                let eta = (per_step * (total - done) as f64).round() as u64;
                eprintln!(
                    "epoch {}/{epochs} step {done}/{total} ({}%) {:.1} images/s eta {}:{:02}:{:02} {msg}",
                    epoch + 1,
                    done * 100 / total.max(1),
                    batch as f64 / per_step,
                    eta / 3600,
                    eta / 60 % 60,
                    eta % 60
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}
