//! Classification read-outs and float-vs-fixed-point agreement: softmax, top-k, and the three
//! agreement numbers of `f8net compare` (float top-1 inside fixed-point top-5; top-1 agreement
//! where the float model is confident, p ≥ 0.5; plain top-1 agreement).

/// Softmax of logits (stable: the maximum is subtracted first).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

/// Indices of the `k` largest scores, largest first (ties: lower index first).
pub fn top_k<T: PartialOrd + Copy>(scores: &[T], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

/// Float probability at or above which the float model counts as confident.
pub const CONFIDENT: f32 = 0.5;

/// Running agreement counts between a float model and its fixed-point version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agreement {
    pub inputs: usize,
    pub float_top1_in_fixed_top5: usize,
    pub top1_agree: usize,
    pub confident: usize,
    pub confident_agree: usize,
}

impl Agreement {
    /// Add one input's float logits and fixed-point logits (any monotone scale).
    pub fn add(&mut self, float_logits: &[f32], fixed_logits: &[i32]) {
        let p = softmax(float_logits);
        let f1 = top_k(&p, 1)[0];
        let fixed5 = top_k(fixed_logits, 5);
        self.inputs += 1;
        self.float_top1_in_fixed_top5 += fixed5.contains(&f1) as usize;
        self.top1_agree += (fixed5[0] == f1) as usize;
        if p[f1] >= CONFIDENT {
            self.confident += 1;
            self.confident_agree += (fixed5[0] == f1) as usize;
        }
    }

    fn ratio(a: usize, b: usize) -> f64 {
        if b == 0 {
            1.0
        } else {
            a as f64 / b as f64
        }
    }

    pub fn top5_rate(&self) -> f64 {
        Self::ratio(self.float_top1_in_fixed_top5, self.inputs)
    }
    pub fn top1_rate(&self) -> f64 {
        Self::ratio(self.top1_agree, self.inputs)
    }
    pub fn confident_rate(&self) -> f64 {
        Self::ratio(self.confident_agree, self.confident)
    }

    /// The three lines `f8net compare` prints.
    pub fn report(&self) -> String {
        format!(
            "inputs: {}\nfloat top-1 in fixed-point top-5: {}/{} = {:.3}\ntop-1 agreement where float p >= {CONFIDENT}: {}/{} = {:.3}\ntop-1 agreement: {}/{} = {:.3}",
            self.inputs,
            self.float_top1_in_fixed_top5,
            self.inputs,
            self.top5_rate(),
            self.confident_agree,
            self.confident,
            self.confident_rate(),
            self.top1_agree,
            self.inputs,
            self.top1_rate()
        )
    }
}
