//! What an attack aims at and what a defense plugs into, with no dependency on either: the
//! attacks drive an [`AttackTarget`], the defenses provide [`Detector`]s, and
//! [`crate::system`] composes both into a defended system.
//!
//! One convention for every attack (foolbox, ART): the attack's objective is *minimised*.
//! [`AttackTarget::attack_loss`] is built from `term`, a per-image loss of one set of logits
//! that is low when the goal is met, plus each detector's penalty, which is zero when the
//! detector stays quiet; gradient-sign attacks step against its gradient, C&W descends it.

use crate::models::{Activations, Classifier};
use burn::prelude::*;

/// What an attack works against.
pub trait AttackTarget {
    /// Differentiable logits of the attacked classifier (input on an autodiff device).
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
    /// The attack's differentiable objective on the system, per image, to be minimised, given
    /// `term`, the loss of one set of logits (C&W's margin, a signed cross-entropy). A bare
    /// model: `term(logits(x))`. A defense adds what its verdict depends on (He et al.): terms
    /// for the other views it classifies, and a penalty that reaches zero when a detector
    /// stays quiet.
    fn attack_loss(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        term(self.logits(x))
    }
    /// [`Self::attack_loss`], plus the logits it computed when they are the system's verdict
    /// as deployed (a bare classifier: no preprocessing, no detector), so that an attack can
    /// judge its iterate from them instead of running the network a second time.
    fn attack_loss_and_verdict(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> (Tensor<1>, Option<Tensor<2>>) {
        (self.attack_loss(x, term), None)
    }
    /// Logits of the complete system, as deployed (may round, smooth, ...; no gradient needed).
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2>;
    /// Which images the system flags as adversarial; `None` when it has no detector.
    fn system_flags(&self, _x: Tensor<4>) -> Option<Tensor<1, Bool>> {
        None
    }
    /// Each detector's score on a batch, in the system's order ([n] each; empty without
    /// detectors): what evaluations record to report detection rates and scores.
    fn detector_scores(&self, _x: Tensor<4>) -> Vec<Tensor<1>> {
        Vec::new()
    }
}

/// A bare classifier: the same network for gradients and for the verdict.
pub struct ModelTarget<'a> {
    /// On an autodiff device, frozen (gradients flow to the input only, dropout off).
    pub grad_model: &'a Classifier,
    /// On the plain device, for verdicts.
    pub model: &'a Classifier,
}

impl AttackTarget for ModelTarget<'_> {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.grad_model.forward(x)
    }
    fn attack_loss_and_verdict(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> (Tensor<1>, Option<Tensor<2>>) {
        let logits = self.logits(x);
        (term(logits.clone()), Some(logits))
    }
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.model.forward(x)
    }
}

/// A detector of adversarial inputs (Xu et al.'s feature squeezing now; Gong et al.'s,
/// Metzen et al.'s and Feinman et al.'s in case study 3): a score per image, a threshold above
/// which the image is flagged, and a differentiable penalty for He et al.'s adaptive attack.
/// It looks at the input as it reaches the system (before any preprocessing defense).
pub trait Detector {
    /// How the page and the records name it.
    fn name(&self) -> String;
    /// Scores above this are flagged (set at 5% false positives on benign held-out images).
    fn threshold(&self) -> f32;
    /// Scores of a batch on the plain device: [n].
    fn score(&self, x: Tensor<4>) -> Tensor<1>;
    /// How people read its score: "score" (flagged above the threshold) or "confidence" (the
    /// score is 1 - a confidence, shown as that confidence against 1 - the threshold, flagged
    /// below it).
    fn shown_as(&self) -> &'static str {
        "score"
    }
    /// Which images it flags.
    fn flags(&self, x: Tensor<4>) -> Tensor<1, Bool> {
        self.score(x).greater_elem(self.threshold())
    }
    /// The adaptive attack's terms for this detector, per image, to be minimised, on the
    /// autodiff device: zero once the detector would stay quiet, plus `term` on any other view
    /// the detector classifies. `logits`: the attacked classifier's logits on `x` itself when
    /// the system computed them already (saves a forward).
    fn adaptive_loss(&self, x: Tensor<4>, logits: Option<Tensor<2>>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1>;
    /// Whether it reads the attacked classifier's internal activations (Metzen et al.'s
    /// subnetwork, Feinman et al.'s density): then a system runs the classifier once and hands
    /// them to [`Self::score_with`] and [`Self::adaptive_loss_with`].
    fn reads_activations(&self) -> bool {
        false
    }
    /// [`Self::score`], from the classifier's activations on `x` when the system has them.
    fn score_with(&self, x: Tensor<4>, _acts: Option<&Activations>) -> Tensor<1> {
        self.score(x)
    }
    /// [`Self::adaptive_loss`], from the classifier's activations on `x` (autodiff device) when
    /// the system has them.
    fn adaptive_loss_with(&self, x: Tensor<4>, acts: Option<&Activations>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        self.adaptive_loss(x, acts.map(|a| a.logits.clone()), term)
    }
}
