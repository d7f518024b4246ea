//! FGSM (Goodfellow et al. 2015) and PGD with an L-infinity bound (Madry et al. 2018): one
//! gradient-sign base; FGSM is a single step of size epsilon from the image itself.

use super::losses::cross_entropy;
use super::{finish, progress_report, succeeded, AttackOutput, AttackTarget, Goal, Observer};
use burn::prelude::*;
use burn::tensor::Distribution;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FgsmParams {
    pub epsilon: f32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PgdParams {
    pub epsilon: f32,
    pub step_size: f32,
    pub steps: usize,
    pub random_start: bool,
}

impl Default for PgdParams {
    fn default() -> Self {
        PgdParams { epsilon: 0.3, step_size: 0.01, steps: 40, random_start: true }
    }
}

/// The gradient of the attack's objective (minimised, see [`crate::target`]) with respect to
/// the input: the cross-entropy of the target (targeted) or minus that of the true class
/// (untargeted), on every view the system classifies, plus the detectors' penalties, which a
/// step against the gradient therefore lowers.
fn input_gradient(target: &dyn AttackTarget, x: Tensor<4>, onehot: Tensor<2>, targeted: bool) -> (Tensor<4>, Tensor<1>) {
    let xg = x.autodiff().require_grad();
    let sign = if targeted { 1.0 } else { -1.0 };
    let loss = target.attack_loss(xg.clone(), &|logits| cross_entropy(logits, onehot.clone()).mul_scalar(sign));
    let total = loss.clone().sum();
    let grads = total.backward();
    let g = xg.grad(&grads).expect("the input requires a gradient");
    (g.inner(), total.detach().inner())
}

/// Sign-gradient steps against the gradient of the objective, each projected back onto the
/// epsilon ball around the image and onto [0, 1]: untargeted steps climb the cross-entropy of
/// the true class, targeted steps descend that of the target, and both descend a detector's
/// penalty.
#[allow(clippy::too_many_arguments)]
pub async fn sign_gradient_attack<O: Observer>(
    target: &dyn AttackTarget,
    images: Tensor<4>,
    goal: &Goal,
    epsilon: f32,
    step_size: f32,
    steps: usize,
    random_start: bool,
    observer: &mut O,
) -> Result<AttackOutput, String> {
    let device = images.device();
    let onehot = goal.onehot(&device);
    let project = |x: Tensor<4>| {
        let lo = images.clone().sub_scalar(epsilon);
        let hi = images.clone().add_scalar(epsilon);
        x.max_pair(lo).min_pair(hi).clamp(0.0, 1.0)
    };
    let mut x = if random_start {
        project(images.clone() + Tensor::random(images.shape(), Distribution::Uniform(-epsilon as f64, epsilon as f64), &device))
    } else {
        images.clone()
    };
    let mut cancelled = false;
    for step in 0..steps {
        let (g, loss) = input_gradient(target, x.clone(), onehot.clone(), goal.is_targeted());
        x = project(x - g.sign().mul_scalar(step_size));
        if observer.due(step + 1) {
            let success = succeeded(target, x.clone(), onehot.clone(), goal.is_targeted(), 0.0);
            let l2 = super::l2_squared(x.clone(), images.clone());
            let p = progress_report(target, step + 1, steps, 0, loss, x.clone(), images.clone(), l2, success).await?;
            if !observer.report(p).await {
                cancelled = true;
                break;
            }
        }
    }
    let success = succeeded(target, x.clone(), onehot, goal.is_targeted(), 0.0);
    finish(target, images, x, success, cancelled).await
}

pub async fn fgsm<O: Observer>(target: &dyn AttackTarget, images: Tensor<4>, goal: &Goal, params: &FgsmParams, observer: &mut O) -> Result<AttackOutput, String> {
    sign_gradient_attack(target, images, goal, params.epsilon, params.epsilon, 1, false, observer).await
}

pub async fn pgd<O: Observer>(target: &dyn AttackTarget, images: Tensor<4>, goal: &Goal, params: &PgdParams, observer: &mut O) -> Result<AttackOutput, String> {
    sign_gradient_attack(target, images, goal, params.epsilon, params.step_size, params.steps, params.random_start, observer).await
}
