//! Benchmark results as rows (GOPS, images/s, int8/f32 ratio, fractions of the measured
//! ceilings) and their markdown and JSON forms. Fractions: int8 ops/s over the dp4a chain's,
//! f32 flop/s over the FMA chain's, and least bytes moved per second over the copy's (the
//! yardstick of memory-bound kernels: depthwise, batch-1 GEMV, elementwise).

use super::ceiling::Ceilings;
use super::layers::{Layer, Op};
use super::models::UploadedPair;
use super::train::TrainRow;
use serde::Serialize;

/// One kernel at one batch size, int8 and f32.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub name: String,
    pub op: Op,
    pub hw: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub batch: usize,
    pub macs: u64,
    /// Seconds per run.
    pub int8_s: f64,
    pub f32_s: f64,
    /// 10⁹ ops per second (2 ops per MAC).
    pub int8_gops: f64,
    pub f32_gops: f64,
    /// f32 time / int8 time: how much faster int8 is.
    pub int8_speedup: f64,
    /// int8 ops/s / dp4a chain; f32 flop/s / FMA chain.
    pub int8_of_dp4a: f64,
    pub f32_of_fma: f64,
    /// Least bytes moved per second / copy bandwidth.
    pub int8_of_copy: f64,
    pub f32_of_copy: f64,
}

impl KernelRow {
    pub fn new(l: &Layer, batch: usize, int8_s: f64, f32_s: f64, c: &Ceilings) -> KernelRow {
        let macs = l.macs(batch);
        let ops = 2.0 * macs as f64;
        KernelRow {
            name: l.name.to_string(),
            op: l.op,
            hw: l.hw,
            cin: l.cin,
            cout: l.cout,
            k: l.k,
            stride: l.stride,
            batch,
            macs,
            int8_s,
            f32_s,
            int8_gops: ops / int8_s / 1e9,
            f32_gops: ops / f32_s / 1e9,
            int8_speedup: f32_s / int8_s,
            int8_of_dp4a: ops / int8_s / c.dp4a.per_s,
            f32_of_fma: ops / f32_s / c.fma.per_s,
            int8_of_copy: l.bytes(batch, 1) as f64 / int8_s / c.copy.per_s,
            f32_of_copy: l.bytes(batch, 4) as f64 / f32_s / c.copy.per_s,
        }
    }

    /// One progress line.
    pub fn summary(&self) -> String {
        format!(
            "kernel {} b{}: int8 {:.2} GOPS, f32 {:.2} GOPS ({:.2}x)",
            self.name, self.batch, self.int8_gops, self.f32_gops, self.int8_speedup
        )
    }
}

/// One model at one batch size, int8 and f32 (one forward pass per run).
#[derive(Clone, Debug, Serialize)]
pub struct ModelRow {
    pub name: String,
    pub batch: usize,
    pub float_source: String,
    pub macs_per_image: u64,
    /// Seconds per forward pass of the whole batch.
    pub int8_s: f64,
    pub f32_s: f64,
    pub int8_images_per_s: f64,
    pub f32_images_per_s: f64,
    pub int8_gops: f64,
    pub f32_gops: f64,
    pub int8_speedup: f64,
    pub int8_of_dp4a: f64,
    pub f32_of_fma: f64,
}

impl ModelRow {
    pub fn new(m: &UploadedPair, batch: usize, int8_s: f64, f32_s: f64, c: &Ceilings) -> ModelRow {
        let ops = 2.0 * (m.macs_per_image * batch as u64) as f64;
        ModelRow {
            name: m.name.to_string(),
            batch,
            float_source: m.float_source.clone(),
            macs_per_image: m.macs_per_image,
            int8_s,
            f32_s,
            int8_images_per_s: batch as f64 / int8_s,
            f32_images_per_s: batch as f64 / f32_s,
            int8_gops: ops / int8_s / 1e9,
            f32_gops: ops / f32_s / 1e9,
            int8_speedup: f32_s / int8_s,
            int8_of_dp4a: ops / int8_s / c.dp4a.per_s,
            f32_of_fma: ops / f32_s / c.fma.per_s,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "model {} b{}: int8 {:.1} images/s, f32 {:.1} images/s ({:.2}x)",
            self.name, self.batch, self.int8_images_per_s, self.f32_images_per_s, self.int8_speedup
        )
    }
}

/// Everything one `f8net bench` run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub adapter: String,
    pub software: bool,
    /// "GPU timestamps" or "wall clock".
    pub clock: &'static str,
    pub rounds: usize,
    pub quick: bool,
    pub ceilings: Ceilings,
    pub kernels: Vec<KernelRow>,
    pub models: Vec<ModelRow>,
    pub train: Vec<TrainRow>,
    /// Rows not measured yet, and why.
    pub todo: Vec<String>,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// `v` in engineering units: "12.3 Gops/s".
pub fn si(v: f64, unit: &str) -> String {
    let (scale, p) = match v.abs() {
        x if x >= 1e12 => (1e12, "T"),
        x if x >= 1e9 => (1e9, "G"),
        x if x >= 1e6 => (1e6, "M"),
        x if x >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    format!("{:.3} {p}{unit}", v / scale)
}

fn pct(f: f64) -> String {
    format!("{:.1}%", 100.0 * f)
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The tables in markdown (for the terminal and docs/PERF.md).
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "adapter: {}{}\ntime: {}, median of {} alternating int8/f32 rounds{}; ops = 2 per MAC\n\n",
            self.adapter,
            if self.software { " (software: a correctness device, not a speed one)" } else { "" },
            self.clock,
            self.rounds,
            if self.quick { " (--quick)" } else { "" },
        );
        let z = &self.ceilings.size;
        s += "| ceiling (measured in this run) | rate | per dispatch | work per dispatch |\n";
        s += "|---|---|---|---|\n";
        let what = [
            format!("dp4a chain ({} inv × {} steps × 8)", z.invocations, z.iters),
            format!(
                "f32 FMA chain ({} inv × {} steps × 8)",
                z.invocations, z.iters
            ),
            format!("copy {} MiB (read + write)", z.copy_bytes >> 20),
        ];
        for (c, w) in self.ceilings.all().iter().zip(what) {
            let unit = if c.unit == "B/s" { "B" } else { "op" };
            s += &format!(
                "| {w} | {} | {:.3} ms | {} |\n",
                si(c.per_s, c.unit),
                c.seconds * 1e3,
                si(c.work, unit)
            );
        }
        if !self.kernels.is_empty() {
            s += "\n| kernel | batch | MMAC | int8 GOPS | f32 GOPS | int8/f32 | int8 % dp4a | \
                  int8 % copy BW | f32 % FMA | f32 % copy BW |\n";
            s += "|---|---|---|---|---|---|---|---|---|---|\n";
            for r in &self.kernels {
                s += &format!(
                    "| {} | {} | {:.1} | {:.2} | {:.2} | {:.2}× | {} | {} | {} | {} |\n",
                    r.name,
                    r.batch,
                    r.macs as f64 / 1e6,
                    r.int8_gops,
                    r.f32_gops,
                    r.int8_speedup,
                    pct(r.int8_of_dp4a),
                    pct(r.int8_of_copy),
                    pct(r.f32_of_fma),
                    pct(r.f32_of_copy)
                );
            }
        }
        if !self.models.is_empty() {
            s += "\n| model | batch | GMAC/image | int8 images/s | f32 images/s | int8/f32 | \
                  int8 GOPS (% dp4a) | f32 GFLOPS (% FMA) |\n";
            s += "|---|---|---|---|---|---|---|---|\n";
            for r in &self.models {
                s += &format!(
                    "| {} | {} | {:.3} | {:.2} | {:.2} | {:.2}× | {:.2} ({}) | {:.2} ({}) |\n",
                    r.name,
                    r.batch,
                    r.macs_per_image as f64 / 1e9,
                    r.int8_images_per_s,
                    r.f32_images_per_s,
                    r.int8_speedup,
                    r.int8_gops,
                    pct(r.int8_of_dp4a),
                    r.f32_gops,
                    pct(r.f32_of_fma)
                );
            }
            if let Some(r) = self.models.first() {
                s += &format!("\nf32 model weights: {}\n", r.float_source);
            }
        }
        if !self.train.is_empty() {
            s += "\n| training step | batch | backend | F8Net images/s | float images/s | \
                  F8Net/float |\n";
            s += "|---|---|---|---|---|---|\n";
            for r in &self.train {
                s += &format!(
                    "| {} | {} | {} | {:.1} | {:.1} | {:.2}× |\n",
                    r.name,
                    r.batch,
                    r.backend,
                    r.fixed_images_per_s,
                    r.float_images_per_s,
                    r.fixed_speedup
                );
            }
        }
        if !self.todo.is_empty() {
            s += "\nNot measured yet:\n";
            for t in &self.todo {
                s += &format!("- {t}\n");
            }
        }
        s += &format!("\nbench wall time: {:.1} s\n", self.seconds);
        s
    }
}
