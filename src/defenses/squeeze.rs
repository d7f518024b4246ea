//! Feature squeezing (Xu, Evans & Qi, 2018) as a preprocessing defense and as a detector, and
//! the adaptive attacks of He et al. (2017) against both.

use crate::attacks::AttackTarget;
use crate::models::{Classifier, DatasetKind};
use crate::squeezers::Squeezer;
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// A classifier behind a squeezer: the system classifies `squeeze(x)`.
pub struct Preprocessed<'a> {
    pub squeezer: Squeezer,
    /// Frozen, on an autodiff device.
    pub grad_model: &'a Classifier,
    pub model: &'a Classifier,
}

impl AttackTarget for Preprocessed<'_> {
    /// Through the squeezer (its straight-through substitute for the rounding).
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.grad_model.forward(self.squeezer.apply_for_gradient(x))
    }
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.model.forward(self.squeezer.apply(x))
    }
}

/// The detector's configuration for a data set: the squeezers and the threshold on the largest
/// L1 distance between softmax outputs, chosen so that 5% of benign held-out images are flagged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SqueezeConfig {
    pub dataset: DatasetKind,
    pub squeezers: Vec<Squeezer>,
    pub threshold: f32,
    /// Fraction of benign held-out images flagged at this threshold, and how many were used.
    pub false_positive_rate: f64,
    pub calibration_images: usize,
    /// The squeezer each preprocessing defense uses.
    pub bit_depth: Squeezer,
    pub median: Squeezer,
    /// sha256 of the weights the threshold was calibrated on: a retrained model moves the
    /// benign scores, so its old threshold would flag the wrong fraction.
    pub model_sha256: String,
}

impl SqueezeConfig {
    /// Refuses a configuration calibrated on other weights than `model_sha256`.
    pub fn check_model(&self, model_sha256: &str) -> Result<(), String> {
        if self.model_sha256 == model_sha256 {
            Ok(())
        } else {
            Err(format!(
                "the {} feature-squeezing threshold was calibrated on another model (weights {}, loaded {}); recalibrate it: lab defend {}",
                self.dataset.name(), short(&self.model_sha256), short(model_sha256), self.dataset.name()
            ))
        }
    }

    /// The squeezers Xu et al. use per data set (MNIST: 1-bit depth and 2x2 median; CIFAR-10:
    /// 5-bit depth, 2x2 median, non-local means omitted) and He et al.'s preprocessing
    /// defenses (MNIST 1 bit / 3x3 median, CIFAR-10 3 bits / 2x2 median).
    pub fn squeezers_for(dataset: DatasetKind) -> (Vec<Squeezer>, Squeezer, Squeezer) {
        match dataset {
            DatasetKind::Mnist => (
                vec![Squeezer::BitDepth { bits: 1 }, Squeezer::Median { width: 2, height: 2 }],
                Squeezer::BitDepth { bits: 1 },
                Squeezer::Median { width: 3, height: 3 },
            ),
            DatasetKind::Cifar10 => (
                vec![Squeezer::BitDepth { bits: 5 }, Squeezer::Median { width: 2, height: 2 }],
                Squeezer::BitDepth { bits: 3 },
                Squeezer::Median { width: 2, height: 2 },
            ),
        }
    }
}

fn short(sha: &str) -> &str {
    if sha.is_empty() { "unrecorded" } else { &sha[..sha.len().min(12)] }
}

/// Per-image L1 distance between the probabilities `p` of the original and the softmax of a
/// squeezed view's logits: [n, 1].
fn l1_to(p: Tensor<2>, squeezed_logits: Tensor<2>) -> Tensor<2> {
    (p - softmax(squeezed_logits, 1)).abs().sum_dim(1)
}

/// Per-image L1 distance between the softmax of `x` and of each squeezed `x`: [n, k].
fn l1_distances(model: &Classifier, x: Tensor<4>, squeezers: &[Squeezer], for_gradient: bool) -> Tensor<2> {
    let p = softmax(model.forward(x.clone()), 1);
    let cols: Vec<Tensor<2>> = squeezers
        .iter()
        .map(|s| {
            let sx = if for_gradient { s.apply_for_gradient(x.clone()) } else { s.apply(x.clone()) };
            l1_to(p.clone(), model.forward(sx))
        })
        .collect();
    Tensor::cat(cols, 1)
}

/// Xu et al.'s score: the largest L1 distance over the squeezers, per image.
pub fn detector_score(model: &Classifier, x: Tensor<4>, squeezers: &[Squeezer]) -> Tensor<1> {
    let n = x.dims()[0];
    l1_distances(model, x, squeezers, false).max_dim(1).reshape([n])
}

/// The threshold that flags `rate` of the benign scores (the (1 - rate) quantile).
pub fn threshold_for_rate(scores: &[f32], rate: f64) -> f32 {
    let mut s = scores.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = (((1.0 - rate) * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[idx]
}

/// The classifier guarded by the detector: the system answers with the model's class unless
/// the score exceeds the threshold.
pub struct FeatureSqueezingDetector<'a> {
    pub config: &'a SqueezeConfig,
    pub grad_model: &'a Classifier,
    pub model: &'a Classifier,
}

impl FeatureSqueezingDetector<'_> {
    /// Zero while an L1 distance is a little under the threshold (so that rounding noise does not
    /// push it back over), growing linearly above.
    /// Summed over the squeezers: `l1` is [n, k], the result [n].
    fn hinge(&self, l1: Tensor<2>) -> Tensor<1> {
        l1.sub_scalar(0.8 * self.config.threshold).clamp_min(0.0).mul_scalar(10.0).sum_dim(1).squeeze_dim(1)
    }

    /// The adaptive attack's detector penalty alone (the sum of the hinges), per image.
    pub fn penalty(&self, x: Tensor<4>) -> Tensor<1> {
        self.hinge(l1_distances(self.grad_model, x, &self.config.squeezers, true))
    }
}

impl AttackTarget for FeatureSqueezingDetector<'_> {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.grad_model.forward(x)
    }

    /// He et al.: the squeezed views must be fooled as well as the original (then, all being
    /// confident in the same class, their softmaxes agree), plus a hinge on each L1 distance
    /// just under the threshold; differentiated through the squeezers (the rounding by its
    /// substitute).
    fn attack_loss(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        let logits = self.grad_model.forward(x.clone());
        let p = softmax(logits.clone(), 1);
        let mut loss = term(logits);
        let mut l1 = Vec::with_capacity(self.config.squeezers.len());
        for s in &self.config.squeezers {
            let squeezed = self.grad_model.forward(s.apply_for_gradient(x.clone()));
            l1.push(l1_to(p.clone(), squeezed.clone()));
            loss = loss + term(squeezed);
        }
        loss + self.hinge(Tensor::cat(l1, 1))
    }

    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.model.forward(x)
    }

    fn system_flags(&self, x: Tensor<4>) -> Option<Tensor<1, Bool>> {
        Some(detector_score(self.model, x, &self.config.squeezers).greater_elem(self.config.threshold))
    }
}
