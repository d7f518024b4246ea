//! The formulas the attacks optimise, each small enough to check by hand in the tests.

use burn::prelude::*;

/// C&W keep tanh away from +-1 (where atanh is infinite) by this factor.
pub const TANH_SCALE: f64 = 0.999999;

/// Pixels in [0, 1] to the unbounded space of the change of variables:
/// w = atanh((2x - 1) * 0.999999).
pub fn to_tanh_space(x: Tensor<4>) -> Tensor<4> {
    x.mul_scalar(2.0).sub_scalar(1.0).mul_scalar(TANH_SCALE).atanh()
}

/// Back to pixels: x = (tanh(w) + 1) / 2, always inside [0, 1].
pub fn from_tanh_space(w: Tensor<4>) -> Tensor<4> {
    w.tanh().mul_scalar(0.5).add_scalar(0.5)
}

/// Carlini & Wagner's f6 on logits Z, per image:
/// untargeted max(Z_y - max_{i != y} Z_i + kappa, 0); targeted max(max_{i != t} Z_i - Z_t + kappa, 0).
pub fn margin_loss(logits: Tensor<2>, onehot: Tensor<2>, targeted: bool, confidence: f32) -> Tensor<1> {
    let n = logits.dims()[0];
    let real = (logits.clone() * onehot.clone()).sum_dim(1).reshape([n]);
    // The class of interest is pushed far down so the max runs over the others (as in C&W's code).
    let other = (logits * onehot.clone().neg().add_scalar(1.0) - onehot.mul_scalar(10000.0)).max_dim(1).reshape([n]);
    let gap = if targeted { other - real } else { real - other };
    gap.add_scalar(confidence).clamp_min(0.0)
}

pub use crate::inference::cross_entropy;
