//! Training-time augmentation on u8 HWC images: random crop with zero padding (the image is padded
//! by `pad` zeros on every side and an `h`×`w` window is cut at a random offset, so the size is
//! kept and the content shifts by up to `pad` pixels) and random horizontal flip.
//!
//! Random draws per image, in this order: `dy = below(2·pad + 1)`, `dx = below(2·pad + 1)` (only
//! when `pad > 0`), then one coin for the flip (only when `flip`). The crop window's top-left corner
//! in the padded image is `(dy, dx)`; `(pad, pad)` is the identity.

use super::rng::SplitMix64;

/// Augmentation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Zero padding on each side before the random crop; 0 disables the crop.
    pub pad: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// No augmentation (evaluation).
    pub const NONE: Augment = Augment {
        pad: 0,
        flip: false,
    };
    /// The standard small-image recipe: pad `pad`, random crop back to size, random flip
    /// (pad 2 for 28×28, 4 for 32×32).
    pub fn crop_flip(pad: usize) -> Augment {
        Augment { pad, flip: true }
    }
    pub fn is_none(&self) -> bool {
        self.pad == 0 && !self.flip
    }
}

/// Copy the `h`×`w` window at `(dy, dx)` of `src` padded by `pad` zeros into `out`
/// (`src`, `out`: `h·w·c` bytes, `(h, w, c)` = `hwc`; `dy, dx ≤ 2·pad`). Output pixel `(y, x)` is
/// source pixel `(y + dy − pad, x + dx − pad)`, or 0 outside the source.
pub fn crop_padded(
    src: &[u8],
    out: &mut [u8],
    (h, w, c): (usize, usize, usize),
    pad: usize,
    (dy, dx): (usize, usize),
) {
    let row = w * c;
    for y in 0..h {
        let dst = &mut out[y * row..(y + 1) * row];
        let sy = (y + dy).wrapping_sub(pad);
        if sy >= h {
            dst.fill(0);
            continue;
        }
        // Source columns x + dx − pad for x in 0..w, clipped to 0..w.
        let x0 = pad.saturating_sub(dx); // first output column with a source pixel
        let sx0 = (x0 + dx) - pad;
        let n = w.saturating_sub(x0.max(sx0));
        if n == 0 {
            dst.fill(0);
            continue;
        }
        dst[..x0 * c].fill(0);
        dst[x0 * c..(x0 + n) * c]
            .copy_from_slice(&src[sy * row + sx0 * c..sy * row + (sx0 + n) * c]);
        dst[(x0 + n) * c..].fill(0);
    }
}

/// Mirror an `h`×`w`×`c` image left-right in place.
pub fn flip_horizontal(img: &mut [u8], h: usize, w: usize, c: usize) {
    for row in img.chunks_exact_mut(w * c).take(h) {
        for x in 0..w / 2 {
            for k in 0..c {
                row.swap(x * c + k, (w - 1 - x) * c + k);
            }
        }
    }
}

/// Augment one image from `src` into `out`, drawing from `rng` as documented above.
pub fn apply(
    aug: &Augment,
    src: &[u8],
    out: &mut [u8],
    (h, w, c): (usize, usize, usize),
    rng: &mut SplitMix64,
) {
    if aug.pad > 0 {
        let span = 2 * aug.pad as u64 + 1;
        let dy = rng.below(span) as usize;
        let dx = rng.below(span) as usize;
        crop_padded(src, out, (h, w, c), aug.pad, (dy, dx));
    } else {
        out.copy_from_slice(src);
    }
    if aug.flip && rng.coin() {
        flip_horizontal(out, h, w, c);
    }
}
