//! Case study 3: three unrelated detectors of adversarial inputs, as He et al. (2017) attack them
//! together. Each is a [`Detector`]: a score, a threshold set at 5% false positives on benign
//! held-out images, and a differentiable penalty for the adaptive attack.
//!
//! - Gong et al. (2017), "Adversarial and clean data are not twins": a binary classifier on the
//!   input (the classifier's architecture, two outputs). Score: logit(adversarial) -
//!   logit(benign).
//! - Metzen et al. (2017), "On detecting adversarial perturbations": a small subnetwork on the
//!   classifier's feature maps at an internal layer, classifier frozen. Same score.
//! - Feinman et al. (2017), "Detecting adversarial samples from artifacts": a Gaussian kernel
//!   density on the last hidden layer over benign training images of the class the classifier
//!   predicts; low density means adversarial, so the score is the negative log density.
//!
//! The adaptive penalty of each is a hinge on its score that reaches zero once the score is
//! `margin` under the threshold. Metzen's and Feinman's read the attacked classifier's
//! activations, which the system computes once per step for all of them
//! ([`Detector::reads_activations`]).

use crate::models::detectors::{KdeSampleInfo, MetzenLayer, MetzenNet};
use crate::models::{Activations, Classifier};
use crate::target::Detector;
use burn::prelude::*;

/// Two-output detector logits [n, 2] to a score [n]: logit(adversarial) - logit(benign), the
/// log-odds of "adversarial".
pub fn logit_gap(logits: Tensor<2>) -> Tensor<1> {
    let n = logits.dims()[0];
    (logits.clone().narrow(1, 1, 1) - logits.narrow(1, 0, 1)).reshape([n])
}

/// The adaptive attack's penalty on a score: max(score - (threshold - margin), 0), zero once the
/// detector is quiet with `margin` to spare.
pub fn hinge(score: Tensor<1>, threshold: f32, margin: f32) -> Tensor<1> {
    score.sub_scalar(threshold - margin).clamp_min(0.0)
}

/// Rows of ones at each row's largest logit (ties: every tied class), as floats [n, classes],
/// without a gradient: which class's density the score reads.
pub fn predicted_mask(logits: Tensor<2>) -> Tensor<2> {
    let l = logits.detach();
    let dims = l.dims();
    let max = l.clone().max_dim(1).expand(dims);
    l.equal(max).float()
}

/// Feinman et al.'s log density of each hidden vector under the Gaussian kernel density of the
/// sample's rows of its class (sklearn's `KernelDensity(kernel="gaussian")`):
/// log( (1/k) sum_i N(h; s_i, sigma^2 I) ) = logsumexp_i(-|h - s_i|^2 / (2 sigma^2)) - log k
/// - (d/2) log(2 pi sigma^2). Computed for every class at once (`sample`: [classes * k, d],
/// class after class) and read at `mask` ([n, classes], one 1 per row); log-sum-exp keeps the
/// kernel sum finite where each kernel underflows (|h - s|^2 / 2 sigma^2 is in the hundreds).
pub fn kde_log_density(hidden: Tensor<2>, sample: Tensor<2>, mask: Tensor<2>, info: &KdeSampleInfo) -> Tensor<1> {
    let [n, d] = hidden.dims();
    let (c, k) = (info.classes, info.per_class);
    let sigma2 = (info.bandwidth as f64).powi(2);
    // |h - s|^2 = |h|^2 + |s|^2 - 2 h.s, clamped at 0 against rounding.
    let hh = hidden.clone().powi_scalar(2).sum_dim(1); // [n, 1]
    let ss = sample.clone().powi_scalar(2).sum_dim(1).reshape([1, c * k]);
    let d2 = (hh + ss - hidden.matmul(sample.transpose()).mul_scalar(2.0)).clamp_min(0.0);
    let v = d2.mul_scalar(-0.5 / sigma2).reshape([n, c, k]);
    let m = v.clone().max_dim(2).detach(); // [n, c, 1]
    let lse = (v - m.clone()).exp().sum_dim(2).log() + m; // [n, c, 1]
    let constant = (k as f64).ln() + 0.5 * d as f64 * (2.0 * std::f64::consts::PI * sigma2).ln();
    (lse.reshape([n, c]).sub_scalar(constant) * mask).sum_dim(1).reshape([n])
}

/// Gong et al.'s detector: its own network on the input.
pub struct GongDetector<'a> {
    pub model: &'a Classifier,
    /// Frozen, on the autodiff device.
    pub grad_model: &'a Classifier,
    pub threshold: f32,
    pub margin: f32,
}

impl Detector for GongDetector<'_> {
    fn name(&self) -> String {
        "gong".into()
    }
    fn threshold(&self) -> f32 {
        self.threshold
    }
    fn score(&self, x: Tensor<4>) -> Tensor<1> {
        logit_gap(self.model.forward(x))
    }
    fn adaptive_loss(&self, x: Tensor<4>, _logits: Option<Tensor<2>>, _term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        hinge(logit_gap(self.grad_model.forward(x)), self.threshold, self.margin)
    }
}

/// Metzen et al.'s detector: a subnetwork on the attacked classifier's feature maps.
pub struct MetzenDetector<'a> {
    pub net: &'a MetzenNet,
    pub grad_net: &'a MetzenNet,
    pub layer: MetzenLayer,
    pub classifier: &'a Classifier,
    pub grad_classifier: &'a Classifier,
    pub threshold: f32,
    pub margin: f32,
}

impl Detector for MetzenDetector<'_> {
    fn name(&self) -> String {
        "metzen".into()
    }
    fn threshold(&self) -> f32 {
        self.threshold
    }
    fn reads_activations(&self) -> bool {
        true
    }
    fn score(&self, x: Tensor<4>) -> Tensor<1> {
        self.score_with(x, None)
    }
    fn score_with(&self, x: Tensor<4>, acts: Option<&Activations>) -> Tensor<1> {
        let maps = match acts {
            Some(a) => self.layer.read(a),
            None => self.layer.read(&self.classifier.activations(x)),
        };
        logit_gap(self.net.forward(maps))
    }
    fn adaptive_loss(&self, x: Tensor<4>, _logits: Option<Tensor<2>>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        self.adaptive_loss_with(x, None, term)
    }
    fn adaptive_loss_with(&self, x: Tensor<4>, acts: Option<&Activations>, _term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        let maps = match acts {
            Some(a) => self.layer.read(a),
            None => self.layer.read(&self.grad_classifier.activations(x)),
        };
        hinge(logit_gap(self.grad_net.forward(maps)), self.threshold, self.margin)
    }
}

/// Feinman et al.'s density detector on the attacked classifier's last hidden layer.
pub struct FeinmanDetector<'a> {
    /// [classes * per_class, dims], on the plain and on the autodiff device.
    pub sample: &'a Tensor<2>,
    pub grad_sample: &'a Tensor<2>,
    pub info: KdeSampleInfo,
    pub classifier: &'a Classifier,
    pub grad_classifier: &'a Classifier,
    pub threshold: f32,
    pub margin: f32,
}

impl FeinmanDetector<'_> {
    /// The negative log density at the predicted class.
    fn score_of(&self, acts: &Activations, sample: &Tensor<2>) -> Tensor<1> {
        kde_log_density(acts.hidden.clone(), sample.clone(), predicted_mask(acts.logits.clone()), &self.info).neg()
    }
}

impl Detector for FeinmanDetector<'_> {
    fn name(&self) -> String {
        "feinman".into()
    }
    fn threshold(&self) -> f32 {
        self.threshold
    }
    fn reads_activations(&self) -> bool {
        true
    }
    fn score(&self, x: Tensor<4>) -> Tensor<1> {
        self.score_with(x, None)
    }
    fn score_with(&self, x: Tensor<4>, acts: Option<&Activations>) -> Tensor<1> {
        match acts {
            Some(a) => self.score_of(a, self.sample),
            None => self.score_of(&self.classifier.activations(x), self.sample),
        }
    }
    fn adaptive_loss(&self, x: Tensor<4>, _logits: Option<Tensor<2>>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        self.adaptive_loss_with(x, None, term)
    }
    /// The density of the class the classifier gives the iterate (He et al.: the attack makes
    /// the classifier wrong and the new class's density high), through the kernel sum.
    fn adaptive_loss_with(&self, x: Tensor<4>, acts: Option<&Activations>, _term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        let score = match acts {
            Some(a) => self.score_of(a, self.grad_sample),
            None => self.score_of(&self.grad_classifier.activations(x), self.grad_sample),
        };
        hinge(score, self.threshold, self.margin)
    }
}
