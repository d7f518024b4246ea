//! The feature squeezers of Xu, Evans & Qi (2018), as tensor operations that run on every
//! backend (WebGPU included) and carry gradients where the mathematics allows.
//!
//! - Colour-depth reduction to i bits: x' = rint(x * (2^i - 1)) / (2^i - 1), with numpy's
//!   round-half-to-even (burn's `round` does the same). Its gradient is zero almost everywhere,
//!   so attacks use [`bit_depth_substitute`]: the same values forward, identity backward (the
//!   substitute of He et al. for non-differentiable parts).
//! - Median smoothing over a w x h window with `scipy.ndimage.median_filter(mode='reflect')`
//!   semantics: borders mirrored including the edge pixel (d c b a | a b c d), a window of size
//!   k covering offsets -(k/2) ..= k-1-k/2 (scipy's anchor for even sizes), and the element of
//!   rank size/2 of the sorted window, per channel. It is computed with min/max compare-exchange
//!   steps, so the gradient flows to the selected pixel.

use burn::prelude::*;

/// Colour-depth reduction to `bits` bits (1..=8).
pub fn bit_depth(x: Tensor<4>, bits: u32) -> Tensor<4> {
    let levels = ((1u32 << bits) - 1) as f64;
    x.mul_scalar(levels).round().div_scalar(levels)
}

/// Forward: exactly [`bit_depth`]. Backward: identity (straight-through).
pub fn bit_depth_substitute(x: Tensor<4>, bits: u32) -> Tensor<4> {
    let rounded = bit_depth(x.clone().detach(), bits);
    x.clone() + (rounded - x.detach())
}

/// Mirrors `before` / `after` rows (dim 2) or columns (dim 3) including the edge, as scipy's
/// 'reflect' (numpy's 'symmetric') does. Pads wider than the image repeat the mirror.
pub fn symmetric_pad(x: Tensor<4>, dim: usize, before: usize, after: usize) -> Tensor<4> {
    let mut x = x;
    let size = x.dims()[dim];
    let mut parts = Vec::new();
    if before > 0 {
        let take = before.min(size);
        let head = x.clone().narrow(dim, 0, take).flip([dim]);
        parts.push(if before > take { symmetric_pad(head.clone(), dim, before - take, 0) } else { head });
    }
    parts.push(x.clone());
    if after > 0 {
        let take = after.min(size);
        let tail = x.clone().narrow(dim, size - take, take).flip([dim]);
        parts.push(if after > take { symmetric_pad(tail.clone(), dim, 0, after - take) } else { tail });
    }
    if parts.len() > 1 {
        x = Tensor::cat(parts, dim);
    }
    x
}

/// Median smoothing with a `width` x `height` window.
pub fn median_smooth(x: Tensor<4>, width: usize, height: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let (top, left) = (height / 2, width / 2);
    let padded = symmetric_pad(symmetric_pad(x, 2, top, height - 1 - top), 3, left, width - 1 - left);
    // Every position of the window as a shifted view of the padded image.
    let mut window: Vec<Tensor<4>> = Vec::with_capacity(width * height);
    for dy in 0..height {
        for dx in 0..width {
            window.push(padded.clone().narrow(2, dy, h).narrow(3, dx, w));
        }
    }
    let rank = window.len() / 2;
    select_rank(window, rank)
}

/// The element of rank `rank` (0 = smallest) of each position across `values`, by odd-even
/// transposition sort (n rounds of compare-exchanges): only min and max, so any backend runs
/// it and gradients reach the element selected.
pub fn select_rank(mut values: Vec<Tensor<4>>, rank: usize) -> Tensor<4> {
    let n = values.len();
    for round in 0..n {
        let mut i = round % 2;
        while i + 1 < n {
            let (a, b) = (values[i].clone(), values[i + 1].clone());
            values[i] = a.clone().min_pair(b.clone());
            values[i + 1] = a.max_pair(b);
            i += 2;
        }
    }
    values.swap_remove(rank)
}

/// A squeezer as the defenses name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Squeezer {
    BitDepth { bits: u32 },
    Median { width: usize, height: usize },
}

impl Squeezer {
    pub fn name(&self) -> String {
        match self {
            Squeezer::BitDepth { bits } => format!("{bits}-bit depth"),
            Squeezer::Median { width, height } => format!("{width}x{height} median"),
        }
    }

    /// The squeezer as deployed.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        match *self {
            Squeezer::BitDepth { bits } => bit_depth(x, bits),
            Squeezer::Median { width, height } => median_smooth(x, width, height),
        }
    }

    /// What an adaptive attack differentiates through: the straight-through substitute for
    /// the rounding, the median itself.
    pub fn apply_for_gradient(&self, x: Tensor<4>) -> Tensor<4> {
        match *self {
            Squeezer::BitDepth { bits } => bit_depth_substitute(x, bits),
            Squeezer::Median { .. } => self.apply(x),
        }
    }
}
