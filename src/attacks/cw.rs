//! Carlini & Wagner's L2 attack ("Towards Evaluating the Robustness of Neural Networks", 2017),
//! following their reference implementation: the tanh change of variables, the f6 margin on
//! logits with `confidence`, Adam on the perturbation with the same constant for every image of
//! a round, early abort when the loss has not fallen by 0.01% over a tenth of the steps, and a
//! binary search over the constant c per image (x10 until the first success, then bisection),
//! keeping the smallest-L2 successful example.

use super::losses::{from_tanh_space, margin_loss, to_tanh_space};
use super::{finish, goal_met, l2_squared, per_image_mask, progress_report, succeeded, AttackOutput, AttackTarget, Goal, Observer};
use crate::inference::read_f32;
use burn::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CwParams {
    /// Adam steps per binary-search round (MAX_ITERATIONS).
    pub steps: usize,
    pub binary_search_steps: usize,
    pub initial_const: f64,
    /// kappa: how far past the decision boundary the logits must go.
    pub confidence: f32,
    pub learning_rate: f64,
    pub abort_early: bool,
    /// Start every round from a random point within this L-infinity distance of the image
    /// instead of from the image itself (He et al.'s random starts against detectors).
    #[serde(default)]
    pub start_noise: Option<f32>,
    /// For a single image: attack this many copies at once, each with its own starting
    /// constant (see [`cw_l2_many_constants`]); 0 or 1 is the plain search.
    #[serde(default)]
    pub constants_at_once: usize,
    /// He et al.'s random restarts: images still not fooled get up to this many fresh runs, each
    /// from a random point within `start_noise` (or [`RESTART_NOISE`]) of the image.
    #[serde(default)]
    pub restarts: usize,
}

/// The L-infinity radius of a restart's random starting point when `start_noise` is not given.
pub const RESTART_NOISE: f32 = 0.1;

impl Default for CwParams {
    fn default() -> Self {
        CwParams { steps: 1000, binary_search_steps: 9, initial_const: 1e-3, confidence: 0.0, learning_rate: 1e-2, abort_early: true, start_noise: None, constants_at_once: 0, restarts: 0 }
    }
}

/// Adam as TensorFlow 1 computes it (C&W used `tf.train.AdamOptimizer`): the bias correction is
/// folded into the step size and epsilon is added to sqrt(v) uncorrected.
pub struct Adam {
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    t: i32,
    m: Tensor<4>,
    v: Tensor<4>,
}

impl Adam {
    pub fn new(learning_rate: f64, like: &Tensor<4>) -> Self {
        Adam { learning_rate, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, t: 0, m: like.zeros_like(), v: like.zeros_like() }
    }

    pub fn step(&mut self, w: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
        self.t += 1;
        self.m = self.m.clone().mul_scalar(self.beta1) + g.clone().mul_scalar(1.0 - self.beta1);
        self.v = self.v.clone().mul_scalar(self.beta2) + g.powi_scalar(2).mul_scalar(1.0 - self.beta2);
        let lr_t = self.learning_rate * (1.0 - self.beta2.powi(self.t)).sqrt() / (1.0 - self.beta1.powi(self.t));
        w - self.m.clone().div(self.v.clone().sqrt().add_scalar(self.epsilon)).mul_scalar(lr_t)
    }
}

/// C&W's update of the constants after a round: lower `c` where the round found an example,
/// raise it (x10 until bounded, then bisect) where it did not.
pub fn update_constants(consts: &mut [f64], lower: &mut [f64], upper: &mut [f64], found: &[bool]) {
    for i in 0..consts.len() {
        if found[i] {
            upper[i] = upper[i].min(consts[i]);
            if upper[i] < 1e9 {
                consts[i] = (lower[i] + upper[i]) / 2.0;
            }
        } else {
            lower[i] = lower[i].max(consts[i]);
            consts[i] = if upper[i] < 1e9 { (lower[i] + upper[i]) / 2.0 } else { consts[i] * 10.0 };
        }
    }
}

pub async fn cw_l2<O: Observer>(
    target: &dyn AttackTarget,
    images: Tensor<4>,
    goal: &Goal,
    params: &CwParams,
    observer: &mut O,
) -> Result<AttackOutput, String> {
    let n = images.dims()[0];
    cw_l2_from(target, images, goal, params, vec![params.initial_const; n], observer).await
}

/// One image, many constants at once: the image is attacked as a batch of `copies`, each
/// starting its binary search at initial_const x 10^i, and the smallest successful example of
/// all copies is returned. Each round then explores `copies` constants in one pass, which is
/// what a GPU does well (C&W's sequential search spends most rounds finding the right scale).
pub async fn cw_l2_many_constants<O: Observer>(
    target: &dyn AttackTarget,
    image: Tensor<4>,
    goal: &Goal,
    params: &CwParams,
    copies: usize,
    observer: &mut O,
) -> Result<AttackOutput, String> {
    let [n, c, h, w] = image.dims();
    assert_eq!(n, 1, "many constants at once attacks one image");
    let copies = copies.max(1);
    let batch = image.clone().expand([copies, c, h, w]);
    let repeat = |v: &[usize]| vec![v[0]; copies];
    let goal_k = Goal { labels: repeat(&goal.labels), targets: goal.targets.as_deref().map(repeat), classes: goal.classes };
    let consts: Vec<f64> = (0..copies).map(|i| params.initial_const * 10f64.powi(i as i32)).collect();
    let out = cw_l2_from(target, batch, &goal_k, params, consts, observer).await?;
    let plane = c * h * w;
    let best = (0..copies)
        .filter(|&i| out.success[i])
        .min_by(|&a, &b| out.l2[a].partial_cmp(&out.l2[b]).unwrap())
        .unwrap_or(0);
    Ok(AttackOutput {
        images: out.images[best * plane..(best + 1) * plane].to_vec(),
        success: vec![out.success[best]],
        l2: vec![out.l2[best]],
        linf: vec![out.linf[best]],
        predicted: vec![out.predicted[best]],
        cancelled: out.cancelled,
    })
}

/// The attack with a starting constant per image.
pub async fn cw_l2_from<O: Observer>(
    target: &dyn AttackTarget,
    images: Tensor<4>,
    goal: &Goal,
    params: &CwParams,
    initial_consts: Vec<f64>,
    observer: &mut O,
) -> Result<AttackOutput, String> {
    let device = images.device();
    let n = images.dims()[0];
    assert_eq!(initial_consts.len(), n, "one starting constant per image");
    let onehot = goal.onehot(&device);
    let targeted = goal.is_targeted();
    let timg = to_tanh_space(images.clone());
    // The distance is measured to the tanh round trip of the image, as in the reference code.
    let reference = from_tanh_space(timg.clone());
    let mut consts = initial_consts;
    let (mut lower, mut upper) = (vec![0.0; n], vec![1e10; n]);
    let mut best_l2 = Tensor::<1>::full([n], 1e10, &device);
    let mut best_img = images.clone();
    let mut best_success = Tensor::<1, Bool>::from_data(TensorData::new(vec![false; n], [n]), &device);
    let total_steps = params.steps * params.binary_search_steps;
    let check_every = (params.steps / 10).max(1);
    let mut cancelled = false;
    let mut step_count = 0;
    'rounds: for round in 0..params.binary_search_steps {
        // C&W: with 10 or more rounds, the last one uses the upper bound found so far.
        if params.binary_search_steps >= 10 && round == params.binary_search_steps - 1 {
            for i in 0..n {
                if upper[i] < 1e9 {
                    consts[i] = upper[i];
                }
            }
        }
        let c = Tensor::<1>::from_data(TensorData::new(consts.iter().map(|&v| v as f32).collect::<Vec<_>>(), [n]), &device);
        let mut w = match params.start_noise {
            // The perturbation variable that lands on a random point of the ball.
            Some(r) => {
                let noise = Tensor::random(images.shape(), burn::tensor::Distribution::Uniform(-r as f64, r as f64), &device);
                to_tanh_space((images.clone() + noise).clamp(0.0, 1.0)) - timg.clone()
            }
            None => images.zeros_like(),
        };
        let mut adam = Adam::new(params.learning_rate, &w);
        let mut round_success = Tensor::<1, Bool>::from_data(TensorData::new(vec![false; n], [n]), &device);
        let mut prev = f64::INFINITY;
        for step in 0..params.steps {
            step_count += 1;
            let wg = w.clone().autodiff().require_grad();
            let x = from_tanh_space(wg.clone() + timg.clone());
            let l2 = l2_squared(x.clone(), reference.clone());
            let (f, verdict) = target.attack_loss_and_verdict(x.clone(), &|logits| margin_loss(logits, onehot.clone(), targeted, params.confidence));
            let loss = l2.clone().sum() + (f * c.clone()).sum();
            let grads = loss.backward();
            let g = wg.grad(&grads).expect("the perturbation requires a gradient").inner();
            // Judge the iterate the loss was computed on (as the reference does), then step.
            let (x, l2, loss) = (x.inner(), l2.inner(), loss.inner());
            // Where the loss's logits are the verdict, no second forward pass (issue 12).
            let success = match verdict {
                Some(logits) => goal_met(logits.inner(), onehot.clone(), targeted, params.confidence),
                None => succeeded(target, x.clone(), onehot.clone(), targeted, params.confidence),
            };
            let improved = success.clone().bool_and(l2.clone().lower(best_l2.clone()));
            best_l2 = best_l2.mask_where(improved.clone(), l2);
            best_img = best_img.clone().mask_where(per_image_mask(improved, &best_img), x.clone());
            best_success = best_success.bool_or(success.clone());
            round_success = round_success.bool_or(success);
            w = adam.step(w, g);
            if params.abort_early && step % check_every == 0 {
                let l = read_f32(loss.clone()).await?[0] as f64;
                if l > prev * 0.9999 {
                    break;
                }
                prev = l;
            }
            if observer.due(step_count) {
                let p = progress_report(target, step_count, total_steps, round, loss, x, images.clone(), best_l2.clone(), best_success.clone()).await?;
                if !observer.report(p).await {
                    cancelled = true;
                    break 'rounds;
                }
            }
        }
        let found: Vec<bool> = read_f32(round_success.float()).await?.iter().map(|v| *v > 0.5).collect();
        update_constants(&mut consts, &mut lower, &mut upper, &found);
    }
    finish(target, images, best_img, best_success, cancelled).await
}
