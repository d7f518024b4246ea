//! The attack engine: FGSM and PGD (one gradient-sign base) and Carlini-Wagner L2, on batches,
//! written once on burn's runtime `Device` (native flex, WebGPU or Flex in the browser).
//!
//! An attack minimises an objective built from differentiable pieces ([`AttackTarget::logits`],
//! [`AttackTarget::attack_loss`], see [`crate::target`] for the one sign convention) and judges every candidate with the complete, possibly
//! non-differentiable system ([`AttackTarget::system_logits`], [`AttackTarget::system_flags`]).
//! The adaptive attacks of He et al. plug in by implementing [`AttackTarget`] for a defense:
//! a substitute for what has no gradient, the real thing for the verdict.
//!
//! Bookkeeping (success, best L2, best example) stays on the device; the host reads back only
//! to decide the early abort, to report progress, after each binary-search round and at the end.

pub mod cw;
pub mod gradient;
pub mod losses;
pub mod spec;

use crate::inference::read_f32;
use burn::prelude::*;

pub use crate::target::{AttackTarget, ModelTarget};
pub use cw::CwParams;
pub use gradient::{FgsmParams, PgdParams};
pub use spec::{AttackOptions, AttackSpec};

/// Untargeted (move away from the true label) or targeted (reach a chosen class), per image.
#[derive(Debug, Clone)]
pub struct Goal {
    pub labels: Vec<usize>,
    pub targets: Option<Vec<usize>>,
    pub classes: usize,
}

impl Goal {
    pub fn untargeted(labels: Vec<usize>, classes: usize) -> Self {
        Goal { labels, targets: None, classes }
    }
    pub fn targeted(labels: Vec<usize>, targets: Vec<usize>, classes: usize) -> Self {
        Goal { labels, targets: Some(targets), classes }
    }
    /// The goal of some of the images, in the order given.
    pub fn subset(&self, indices: &[usize]) -> Goal {
        Goal {
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            targets: self.targets.as_ref().map(|t| indices.iter().map(|&i| t[i]).collect()),
            classes: self.classes,
        }
    }
    pub fn is_targeted(&self) -> bool {
        self.targets.is_some()
    }
    /// The class each loss is about: the target when targeted, else the true label.
    pub fn classes_of_interest(&self) -> &[usize] {
        self.targets.as_deref().unwrap_or(&self.labels)
    }
    /// One-hot rows of the classes of interest, built on the host (burn's `one_hot` reads back
    /// synchronously, which WebGPU forbids).
    pub fn onehot(&self, device: &Device) -> Tensor<2> {
        crate::inference::onehot(self.classes_of_interest(), self.classes, device)
    }
}

/// A progress report, at most a few per second in the page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    pub step: usize,
    pub total_steps: usize,
    /// Binary-search round of C&W (0 for the gradient-sign attacks).
    pub round: usize,
    pub loss: f32,
    /// Mean L2 distance of the current iterates.
    pub l2: f32,
    /// Mean L2 of the best successful examples so far (NaN while none).
    pub best_l2: f32,
    /// How many images are already adversarial (best so far).
    pub successes: usize,
    /// The system's prediction for the first image's current iterate.
    pub predicted: usize,
    /// The first image's current iterate (CHW, [0, 1]).
    #[serde(skip)]
    pub image: Vec<f32>,
}

/// Receives progress and may cancel.
#[allow(async_fn_in_trait)]
pub trait Observer {
    /// Whether a report is wanted at this step (each report costs a read-back).
    fn due(&mut self, step: usize) -> bool;
    /// Returns false to cancel the attack.
    async fn report(&mut self, progress: Progress) -> bool;
}

/// Reports nothing, never cancels.
pub struct Silent;

impl Observer for Silent {
    fn due(&mut self, _step: usize) -> bool {
        false
    }
    async fn report(&mut self, _progress: Progress) -> bool {
        true
    }
}

/// What an attack returns, per image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttackOutput {
    /// Adversarial images (the original where the attack failed), CHW after CHW.
    #[serde(skip)]
    pub images: Vec<f32>,
    pub success: Vec<bool>,
    /// Distances to the original, in the [0, 1] pixel scale (0 where the attack failed).
    pub l2: Vec<f32>,
    pub linf: Vec<f32>,
    /// The system's class for each returned image.
    pub predicted: Vec<usize>,
    pub cancelled: bool,
}

impl AttackOutput {
    /// Takes the successes of `other`, a run on the images `indices` of this batch.
    pub fn merge(&mut self, indices: &[usize], other: AttackOutput) {
        let size = self.images.len() / self.success.len().max(1);
        for (k, &i) in indices.iter().enumerate() {
            if other.success[k] {
                self.images[i * size..(i + 1) * size].copy_from_slice(&other.images[k * size..(k + 1) * size]);
                self.success[i] = true;
                self.l2[i] = other.l2[k];
                self.linf[i] = other.linf[k];
                self.predicted[i] = other.predicted[k];
            }
        }
        self.cancelled |= other.cancelled;
    }

    /// Outputs of several batches, one after the other.
    pub fn concat(parts: Vec<AttackOutput>) -> AttackOutput {
        let mut all = AttackOutput { images: vec![], success: vec![], l2: vec![], linf: vec![], predicted: vec![], cancelled: false };
        for p in parts {
            all.images.extend(p.images);
            all.success.extend(p.success);
            all.l2.extend(p.l2);
            all.linf.extend(p.linf);
            all.predicted.extend(p.predicted);
            all.cancelled |= p.cancelled;
        }
        all
    }

    /// Some of the images, in the order given.
    pub fn select(&self, positions: &[usize]) -> AttackOutput {
        let size = self.images.len() / self.success.len().max(1);
        AttackOutput {
            images: positions.iter().flat_map(|&i| self.images[i * size..(i + 1) * size].iter().copied()).collect(),
            success: positions.iter().map(|&i| self.success[i]).collect(),
            l2: positions.iter().map(|&i| self.l2[i]).collect(),
            linf: positions.iter().map(|&i| self.linf[i]).collect(),
            predicted: positions.iter().map(|&i| self.predicted[i]).collect(),
            cancelled: self.cancelled,
        }
    }

    pub fn success_rate(&self) -> f64 {
        self.success.iter().filter(|s| **s).count() as f64 / self.success.len().max(1) as f64
    }
    /// Mean L2 over successful examples (NaN when none).
    pub fn mean_l2(&self) -> f64 {
        let v: Vec<f64> = self.l2.iter().zip(&self.success).filter(|(_, s)| **s).map(|(l, _)| *l as f64).collect();
        if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
    }
}

/// Per-image squared L2 distance: [n, c, h, w] x2 -> [n].
pub fn l2_squared(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    let n = a.dims()[0];
    (a - b).powi_scalar(2).reshape([n as i32, -1]).sum_dim(1).reshape([n])
}

/// Per-image L-infinity distance: [n].
pub fn linf(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    let n = a.dims()[0];
    (a - b).abs().reshape([n as i32, -1]).max_dim(1).reshape([n])
}

/// Broadcasts a per-image mask [n] over images [n, c, h, w].
pub fn per_image_mask(mask: Tensor<1, Bool>, like: &Tensor<4>) -> Tensor<4, Bool> {
    let [n, c, h, w] = like.dims();
    mask.reshape([n, 1, 1, 1]).expand([n, c, h, w])
}

/// Did the system do what the goal asks, with a margin of `confidence` on its logits, and
/// stay quiet? (Carlini & Wagner's `compare`: the class of interest's logit is moved by
/// kappa before the argmax.)
pub fn succeeded(target: &dyn AttackTarget, x: Tensor<4>, goal_onehot: Tensor<2>, targeted: bool, confidence: f32) -> Tensor<1, Bool> {
    let ok = goal_met(target.system_logits(x.clone()), goal_onehot, targeted, confidence);
    match target.system_flags(x) {
        Some(flags) => ok.bool_and(flags.bool_not()),
        None => ok,
    }
}

/// Whether logits do what the goal asks, with a margin of `confidence` (no detector involved).
pub fn goal_met(logits: Tensor<2>, goal_onehot: Tensor<2>, targeted: bool, confidence: f32) -> Tensor<1, Bool> {
    let n = logits.dims()[0];
    let shift = if targeted { -confidence } else { confidence };
    let scored = logits + goal_onehot.clone().mul_scalar(shift);
    let pred = scored.argmax(1).reshape([n]);
    let y = goal_onehot.argmax(1).reshape([n]);
    let hit = pred.equal(y);
    if targeted { hit } else { hit.bool_not() }
}

/// Reads the final images and per-image figures in one go and builds the output; failed
/// images come back as the original (C&W's convention).
pub async fn finish(
    target: &dyn AttackTarget,
    original: Tensor<4>,
    adversarial: Tensor<4>,
    success: Tensor<1, Bool>,
    cancelled: bool,
) -> Result<AttackOutput, String> {
    let n = original.dims()[0];
    let images = original.clone().mask_where(per_image_mask(success.clone(), &original), adversarial);
    let l2 = l2_squared(images.clone(), original.clone()).sqrt();
    let li = linf(images.clone(), original);
    let pred = target.system_logits(images.clone()).argmax(1).reshape([n]).float();
    let flat = images.clone().reshape([-1]);
    let all = read_f32(Tensor::cat(vec![success.float(), l2, li, pred, flat], 0)).await?;
    Ok(AttackOutput {
        success: all[..n].iter().map(|v| *v > 0.5).collect(),
        l2: all[n..2 * n].to_vec(),
        linf: all[2 * n..3 * n].to_vec(),
        predicted: all[3 * n..4 * n].iter().map(|v| *v as usize).collect(),
        images: all[4 * n..].to_vec(),
        cancelled,
    })
}

/// Judges an attack's output by another system (a non-adaptive attack: made against the bare
/// model, judged by the defended system). An example counts only if it also fools `system`;
/// summaries average distances over successes only, so caught examples keep theirs.
pub async fn judge(system: &dyn AttackTarget, out: AttackOutput, goal: &Goal, shape: crate::data::ImageShape, device: &Device) -> Result<AttackOutput, String> {
    let x = crate::inference::to_tensor(&out.images, shape, device);
    let n = goal.labels.len();
    let ok = succeeded(system, x.clone(), goal.onehot(device), goal.is_targeted(), 0.0);
    let pred = system.system_logits(x).argmax(1).reshape([n]).float();
    let all = read_f32(Tensor::cat(vec![ok.float(), pred], 0)).await?;
    let success: Vec<bool> = out.success.iter().zip(&all[..n]).map(|(s, v)| *s && *v > 0.5).collect();
    // The examples and their distances stay (so a caught example can still be shown); only the
    // verdict and the system's classes change.
    Ok(AttackOutput {
        l2: out.l2,
        linf: out.linf,
        predicted: all[n..].iter().map(|v| *v as usize).collect(),
        success,
        images: out.images,
        cancelled: out.cancelled,
    })
}

/// A report's figures, read back in one transfer: loss, per-image L2 of the iterates, best L2
/// so far, successes, the first image's prediction and pixels.
#[allow(clippy::too_many_arguments)]
pub async fn progress_report(
    target: &dyn AttackTarget,
    step: usize,
    total_steps: usize,
    round: usize,
    loss: Tensor<1>,
    current: Tensor<4>,
    original: Tensor<4>,
    best_l2: Tensor<1>,
    best_success: Tensor<1, Bool>,
) -> Result<Progress, String> {
    let n = current.dims()[0];
    let l2 = l2_squared(current.clone(), original).sqrt();
    let first = current.clone().slice([0..1]);
    let pred = target.system_logits(first.clone()).argmax(1).reshape([1]).float();
    let all = read_f32(Tensor::cat(
        vec![loss.reshape([1]), l2, best_l2.sqrt(), best_success.float(), pred, first.reshape([-1])],
        0,
    ))
    .await?;
    let l2s = &all[1..1 + n];
    let (best, succ) = (&all[1 + n..1 + 2 * n], &all[1 + 2 * n..1 + 3 * n]);
    let ok: Vec<f32> = best.iter().zip(succ).filter(|(_, s)| **s > 0.5).map(|(b, _)| *b).collect();
    Ok(Progress {
        step,
        total_steps,
        round,
        loss: all[0],
        l2: l2s.iter().sum::<f32>() / n as f32,
        best_l2: if ok.is_empty() { f32::NAN } else { ok.iter().sum::<f32>() / ok.len() as f32 },
        successes: ok.len(),
        predicted: all[1 + 3 * n] as usize,
        image: all[2 + 3 * n..].to_vec(),
    })
}
