//! Measuring attacks the way papers report them: on the first N correctly classified test
//! images, success rate and L2 / L-infinity distortion of the successful examples, and how many
//! stay adversarial once rounded to 8-bit pixels (what a PNG holds).

use crate::attacks::{self, AttackOutput, AttackTarget, Goal, Observer};
use crate::data::Dataset;
use crate::inference::{self, read_f32};
use crate::preprocess::quantize_8bit;
use burn::prelude::*;
use rand::{Rng, SeedableRng};

pub use crate::attacks::spec::{AttackOptions, AttackSpec};

/// What an attack on one or more defended systems produced.
pub struct Against {
    /// One output per system, by that system's verdict.
    pub judged: Vec<AttackOutput>,
    /// Non-adaptive runs: the examples made on the bare model, which every system judged.
    pub bare: Option<AttackOutput>,
    /// Seconds spent for each system (a shared run on the bare model counts for each).
    pub seconds: Vec<f64>,
}

/// Runs an attack on defended `systems`: adaptively (aimed at each system itself, in turn), or
/// non-adaptively (made once against the bare model, then judged by each system, as the
/// defenses' authors evaluate them).
#[allow(clippy::too_many_arguments)]
pub async fn run_against<O: Observer>(
    spec: &AttackSpec,
    systems: &[&dyn AttackTarget],
    bare: &dyn AttackTarget,
    adaptive: bool,
    images: Tensor<4>,
    goal: &Goal,
    shape: crate::data::ImageShape,
    observer: &mut O,
) -> Result<Against, String> {
    let device = images.device();
    let made = if adaptive {
        None
    } else {
        let t = clock::now();
        let out = spec.run(bare, images.clone(), goal, observer).await?;
        Some((out, clock::now() - t))
    };
    let mut judged = Vec::with_capacity(systems.len());
    let mut seconds = Vec::with_capacity(systems.len());
    for system in systems {
        let t = clock::now();
        let out = match &made {
            Some((m, _)) => attacks::judge(*system, m.clone(), goal, shape, &device).await?,
            None => spec.run(*system, images.clone(), goal, observer).await?,
        };
        seconds.push(clock::now() - t + made.as_ref().map_or(0.0, |m| m.1));
        judged.push(out);
    }
    Ok(Against { judged, bare: made.map(|m| m.0), seconds })
}

/// One system's evaluation: the test images it was attacked on, their goal, what the attack
/// produced (by this system's verdict), which examples stay adversarial as 8-bit PNGs.
pub struct Evaluated {
    pub indices: Vec<usize>,
    pub goal: Goal,
    pub output: AttackOutput,
    pub rounded: Vec<bool>,
    pub seconds: f64,
    /// The system's detectors on each returned example (the original where the attack failed).
    pub readings: Vec<Reading>,
    /// The same detectors on each benign original.
    pub benign: Vec<Reading>,
    /// Non-adaptive runs: whether the example made on the bare model fooled the bare model
    /// (the examples whose detection the defenses' authors report).
    pub made: Option<Vec<bool>>,
}

/// What a system's detectors say of one image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// Whether any detector flags it.
    pub flagged: bool,
    /// Each detector's score, in the system's order.
    pub scores: Vec<f32>,
}

/// The detectors' readings of a batch, read back in one transfer (empty readings for a system
/// without detectors).
pub async fn read_detectors(system: &dyn AttackTarget, x: Tensor<4>) -> Result<Vec<Reading>, String> {
    let n = x.dims()[0];
    let Some(flags) = system.system_flags(x.clone()) else {
        return Ok(vec![Reading::default(); n]);
    };
    let scores = system.detector_scores(x);
    let k = scores.len();
    let mut parts = vec![flags.float()];
    parts.extend(scores);
    let all = read_f32(Tensor::cat(parts, 0)).await?;
    Ok((0..n).map(|i| Reading { flagged: all[i] > 0.5, scores: (0..k).map(|d| all[(d + 1) * n + i]).collect() }).collect())
}

/// What an evaluation runs: the attack, adaptively against each system or made on the bare
/// model and judged by each, on each system's own images (`chosen`, see [`first_accepted`]),
/// in batches, with the targets of [`targets_for`] when targeted.
pub struct Plan<'a> {
    pub spec: &'a AttackSpec,
    pub systems: &'a [&'a dyn AttackTarget],
    pub bare: &'a dyn AttackTarget,
    pub adaptive: bool,
    pub chosen: &'a [Vec<usize>],
    pub targeted: bool,
    pub seed: u64,
    pub classes: usize,
    pub batch_size: usize,
}

/// The goal for some test images.
fn goal_for(data: &Dataset, indices: &[usize], plan: &Plan) -> Goal {
    let labels: Vec<usize> = indices.iter().map(|&i| data.labels[i] as usize).collect();
    if plan.targeted {
        let targets = targets_for(indices, &labels, plan.classes, plan.seed);
        Goal::targeted(labels, targets, plan.classes)
    } else {
        Goal::untargeted(labels, plan.classes)
    }
}

/// Attacks `indices` of `data` against `target` in batches; `observer(k)` watches batch k.
async fn attack_images<O: Observer>(
    plan: &Plan<'_>,
    target: &dyn AttackTarget,
    data: &Dataset,
    indices: &[usize],
    observer: &mut dyn FnMut(usize) -> O,
    device: &Device,
) -> Result<AttackOutput, String> {
    let mut parts = Vec::new();
    for (b, batch) in indices.chunks(plan.batch_size.max(1)).enumerate() {
        let sub = data.select(batch);
        let x = inference::dataset_tensor(&sub, 0, sub.len(), device);
        parts.push(plan.spec.run(target, x, &goal_for(data, batch, plan), &mut observer(b)).await?);
    }
    Ok(AttackOutput::concat(parts))
}

/// Runs a plan: adaptive attacks once per system on its images; a non-adaptive attack once on
/// the bare model over the union of all systems' images, each system then judging the
/// examples of its own images.
pub async fn evaluate<O: Observer>(plan: &Plan<'_>, data: &Dataset, observer: &mut dyn FnMut(usize) -> O, device: &Device) -> Result<Vec<Evaluated>, String> {
    let made = if plan.adaptive {
        None
    } else {
        let mut union: Vec<usize> = plan.chosen.iter().flatten().copied().collect();
        union.sort_unstable();
        union.dedup();
        let t = clock::now();
        let out = attack_images(plan, plan.bare, data, &union, observer, device).await?;
        Some((union, out, clock::now() - t))
    };
    let mut results = Vec::with_capacity(plan.systems.len());
    for (system, indices) in plan.systems.iter().zip(plan.chosen) {
        let t = clock::now();
        let goal = goal_for(data, indices, plan);
        let output = match &made {
            Some((union, out, _)) => {
                let positions: Vec<usize> = indices.iter().map(|i| union.binary_search(i).expect("every chosen image is in the union")).collect();
                attacks::judge(*system, out.select(&positions), &goal, data.shape, device).await?
            }
            None => attack_images(plan, *system, data, indices, observer, device).await?,
        };
        let rounded = rounded_success(*system, &output, &goal, data.shape, device).await?;
        // A shared run on the bare model counts in full for each system that judged it.
        let seconds = clock::now() - t + made.as_ref().map_or(0.0, |m| m.2);
        let readings = read_detectors(*system, inference::to_tensor(&output.images, data.shape, device)).await?;
        let benign = read_detectors(*system, inference::dataset_tensor(&data.select(indices), 0, indices.len(), device)).await?;
        let made_success = made.as_ref().map(|(union, out, _)| indices.iter().map(|i| out.success[union.binary_search(i).expect("in the union")]).collect());
        results.push(Evaluated { indices: indices.clone(), goal, output, rounded, seconds, readings, benign, made: made_success });
    }
    Ok(results)
}

/// Seconds on a monotonic-enough clock, natively and in the browser (where `Instant` panics).
mod clock {
    #[cfg(not(target_family = "wasm"))]
    pub fn now() -> f64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64()
    }

    #[cfg(target_family = "wasm")]
    pub fn now() -> f64 {
        js_sys::Date::now() / 1000.0
    }
}

/// Indices of the first `count` test images that `system` classifies correctly and does not
/// flag: each defended system is evaluated on images it gets right on its own (an image it
/// already misclassifies or flags would "fall" at step 0 with no distortion and pull its mean
/// L2 down).
pub async fn first_accepted(system: &dyn AttackTarget, data: &Dataset, count: usize, device: &Device) -> Result<Vec<usize>, String> {
    let mut chosen = Vec::new();
    let mut start = 0;
    while chosen.len() < count && start < data.len() {
        let end = (start + 200).min(data.len());
        let x = inference::dataset_tensor(data, start, end, device);
        let labels: Vec<usize> = data.labels[start..end].iter().map(|&l| l as usize).collect();
        let classes = system.system_logits(x.clone().slice([0..1])).dims()[1];
        let onehot = inference::onehot(&labels, classes, device);
        // Accepted: the system's class is the label and no detector flags the image. (Not "the
        // untargeted attack's failure": a flagged image that keeps its class fails that goal too,
        // and would count as "detected" before any attack.)
        let correct = attacks::goal_met(system.system_logits(x.clone()), onehot, true, 0.0);
        let accepted = match system.system_flags(x) {
            Some(flags) => correct.bool_and(flags.bool_not()),
            None => correct,
        };
        let accepted = read_f32(accepted.float()).await?;
        for (i, a) in accepted.iter().enumerate() {
            if *a > 0.5 && chosen.len() < count {
                chosen.push(start + i);
            }
        }
        start = end;
    }
    Ok(chosen)
}

/// A random class other than each label (seeded), as in C&W's targeted evaluation.
pub fn random_targets(labels: &[usize], classes: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    labels.iter().map(|&l| (l + 1 + rng.random_range(0..classes - 1)) % classes).collect()
}

/// The target of each test image, drawn from the seed and the image's index alone, so an image
/// gets the same target in every system's evaluation (and in another implementation that reads
/// the records).
pub fn targets_for(indices: &[usize], labels: &[usize], classes: usize, seed: u64) -> Vec<usize> {
    indices.iter().zip(labels).map(|(&i, &l)| random_targets(&[l], classes, seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))[0]).collect()
}

/// Does the system still do what the goal asks on the 8-bit rounded examples?
pub async fn rounded_success(target: &dyn AttackTarget, out: &AttackOutput, goal: &Goal, shape: crate::data::ImageShape, device: &Device) -> Result<Vec<bool>, String> {
    let x = inference::to_tensor(&quantize_8bit(&out.images), shape, device);
    let ok = attacks::succeeded(target, x, goal.onehot(device), goal.is_targeted(), 0.0);
    let ok = read_f32(ok.float()).await?;
    Ok(ok.iter().zip(&out.success).map(|(v, s)| *s && *v > 0.5).collect())
}

