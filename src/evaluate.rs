//! Measuring attacks the way papers report them: on the first N correctly classified test
//! images, success rate and L2 / L-infinity distortion of the successful examples, and how many
//! stay adversarial once rounded to 8-bit pixels (what a PNG holds).

use crate::attacks::{self, AttackOutput, AttackTarget, CwParams, FgsmParams, Goal, Observer, PgdParams};
use crate::data::Dataset;
use crate::inference::{self, read_f32};
use crate::models::Classifier;
use crate::preprocess::quantize_8bit;
use burn::prelude::*;
use rand::{Rng, SeedableRng};

/// Which attack, with its parameters (foolbox / ART names).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "attack", rename_all = "lowercase")]
pub enum AttackSpec {
    Fgsm(FgsmParams),
    Pgd(PgdParams),
    Cw(CwParams),
}

/// Parameters as a person gives them (command line, page): anything left out takes the
/// attack's default.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::Args))]
pub struct AttackOptions {
    /// FGSM / PGD: the L-infinity bound
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub epsilon: Option<f32>,
    /// PGD: the size of each step (default epsilon / 4)
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub step_size: Option<f32>,
    /// PGD: steps; CW: Adam steps per binary-search round
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub steps: Option<usize>,
    /// CW: rounds of the search over the constant c
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub binary_search_steps: Option<usize>,
    /// CW: the first constant c
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub initial_const: Option<f64>,
    /// CW: kappa, the margin past the decision boundary
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub confidence: Option<f32>,
    /// CW: Adam's learning rate
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub learning_rate: Option<f64>,
    /// PGD: start from a random point of the ball (default true)
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub random_start: Option<bool>,
    /// CW: start each round from a random point this far (L-infinity) from the image
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub start_noise: Option<f32>,
    /// CW on one image: search this many constants at once (a batch of copies)
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub constants_at_once: Option<usize>,
    /// CW: rerun the images not fooled yet, up to this many times, from random starts
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub restarts: Option<usize>,
}

impl AttackSpec {
    /// `name` is cw, fgsm or pgd.
    pub fn build(name: &str, o: &AttackOptions) -> Result<Self, String> {
        let positive = |what: &str, v: f64| if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{what} must be a positive number, got {v}")) };
        let spec = match name.to_ascii_lowercase().as_str() {
            "fgsm" => AttackSpec::Fgsm(FgsmParams { epsilon: o.epsilon.unwrap_or(0.3) }),
            "pgd" => {
                let d = PgdParams::default();
                let epsilon = o.epsilon.unwrap_or(d.epsilon);
                AttackSpec::Pgd(PgdParams {
                    epsilon,
                    // Steps of a quarter of epsilon unless given: 40 steps cross the ball ten times.
                    step_size: o.step_size.unwrap_or(epsilon / 4.0),
                    steps: o.steps.unwrap_or(d.steps),
                    random_start: o.random_start.unwrap_or(d.random_start),
                })
            }
            "cw" | "cw-l2" | "cwl2" | "cw_l2" => {
                let d = CwParams::default();
                AttackSpec::Cw(CwParams {
                    steps: o.steps.unwrap_or(d.steps),
                    binary_search_steps: o.binary_search_steps.unwrap_or(d.binary_search_steps),
                    initial_const: o.initial_const.unwrap_or(d.initial_const),
                    confidence: o.confidence.unwrap_or(d.confidence),
                    learning_rate: o.learning_rate.unwrap_or(d.learning_rate),
                    abort_early: true,
                    start_noise: o.start_noise,
                    constants_at_once: o.constants_at_once.unwrap_or(0),
                    restarts: o.restarts.unwrap_or(0),
                })
            }
            other => return Err(format!("unknown attack '{other}' (expected cw, fgsm or pgd)")),
        };
        match &spec {
            AttackSpec::Fgsm(p) => positive("epsilon", p.epsilon as f64)?,
            AttackSpec::Pgd(p) => {
                positive("epsilon", p.epsilon as f64)?;
                positive("step_size", p.step_size as f64)?;
                positive("steps", p.steps as f64)?;
            }
            AttackSpec::Cw(p) => {
                positive("steps", p.steps as f64)?;
                positive("binary_search_steps", p.binary_search_steps as f64)?;
                positive("initial_const", p.initial_const)?;
                positive("learning_rate", p.learning_rate)?;
                if !(p.confidence >= 0.0) {
                    return Err(format!("confidence must be 0 or more, got {}", p.confidence));
                }
            }
        }
        Ok(spec)
    }

    pub fn name(&self) -> String {
        match self {
            AttackSpec::Fgsm(p) => format!("FGSM eps={}", p.epsilon),
            AttackSpec::Pgd(p) => format!("PGD eps={} ({} steps of {})", p.epsilon, p.steps, p.step_size),
            AttackSpec::Cw(p) => format!(
                "CW-L2 (steps {}, binary_search_steps {}, confidence {}{})",
                p.steps,
                p.binary_search_steps,
                p.confidence,
                p.start_noise.map(|r| format!(", random starts within {r}")).unwrap_or_default()
                    + &if p.restarts > 0 { format!(", {} restarts", p.restarts) } else { String::new() }
            ),
        }
    }

    pub async fn run<O: Observer>(&self, target: &dyn AttackTarget, images: Tensor<4>, goal: &Goal, observer: &mut O) -> Result<AttackOutput, String> {
        match self {
            AttackSpec::Fgsm(p) => attacks::gradient::fgsm(target, images, goal, p, observer).await,
            AttackSpec::Pgd(p) => attacks::gradient::pgd(target, images, goal, p, observer).await,
            AttackSpec::Cw(p) => {
                let mut out = Self::cw_once(p, target, images.clone(), goal, observer).await?;
                // He et al.: the images not fooled yet get fresh runs from random starting points.
                for _ in 0..p.restarts {
                    let failed: Vec<usize> = (0..out.success.len()).filter(|&i| !out.success[i]).collect();
                    if failed.is_empty() || out.cancelled {
                        break;
                    }
                    let index = Tensor::<1, Int>::from_data(TensorData::new(failed.iter().map(|&i| i as i64).collect::<Vec<_>>(), [failed.len()]), &images.device());
                    let again = CwParams { start_noise: Some(p.start_noise.unwrap_or(attacks::cw::RESTART_NOISE)), restarts: 0, ..p.clone() };
                    let more = Self::cw_once(&again, target, images.clone().select(0, index), &goal.subset(&failed), observer).await?;
                    out.merge(&failed, more);
                }
                Ok(out)
            }
        }
    }

    async fn cw_once<O: Observer>(p: &CwParams, target: &dyn AttackTarget, images: Tensor<4>, goal: &Goal, observer: &mut O) -> Result<AttackOutput, String> {
        if p.constants_at_once > 1 && images.dims()[0] == 1 {
            attacks::cw::cw_l2_many_constants(target, images, goal, p, p.constants_at_once, observer).await
        } else {
            attacks::cw::cw_l2(target, images, goal, p, observer).await
        }
    }
}

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

/// Indices of the first `count` test images the model classifies correctly.
pub async fn first_correct(model: &Classifier, data: &Dataset, count: usize, device: &Device) -> Result<Vec<usize>, String> {
    let mut chosen = Vec::new();
    let mut start = 0;
    while chosen.len() < count && start < data.len() {
        let end = (start + 200).min(data.len());
        let predicted = inference::predict_dataset(model, &data.slice(start, end), 200, device).await?;
        for (i, p) in predicted.iter().enumerate() {
            if *p == data.labels[start + i] as usize && chosen.len() < count {
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

/// The figures of one attack run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AttackRecord {
    pub dataset: String,
    pub model: String,
    /// The system attacked: `none` (the bare model), `bit-depth`, `median` or `detector`.
    #[serde(default = "bare_system")]
    pub defense: String,
    /// Aimed at the defense itself (He et al.), or made on the bare model and judged by it.
    #[serde(default)]
    pub adaptive: bool,
    pub attack: AttackSpec,
    pub targeted: bool,
    pub images: usize,
    pub success_rate: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mean_l2: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub median_l2: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mean_linf: f64,
    /// Fraction of all images whose 8-bit rounded example still fools the system.
    pub rounded_success_rate: f64,
    pub seconds: f64,
}

/// JSON has no NaN: serde_json writes a distortion over no success as null; read it back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn bare_system() -> String {
    "none".into()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 }
}

/// Does the system still do what the goal asks on the 8-bit rounded examples?
pub async fn rounded_success(target: &dyn AttackTarget, out: &AttackOutput, goal: &Goal, shape: crate::data::ImageShape, device: &Device) -> Result<Vec<bool>, String> {
    let x = inference::to_tensor(&quantize_8bit(&out.images), shape, device);
    let ok = attacks::succeeded(target, x, goal.onehot(device), goal.is_targeted(), 0.0);
    let ok = read_f32(ok.float()).await?;
    Ok(ok.iter().zip(&out.success).map(|(v, s)| *s && *v > 0.5).collect())
}

/// Summarises outputs (possibly from several batches) into a record.
pub fn summarise(
    dataset: &str,
    model: &str,
    defense: &str,
    adaptive: bool,
    spec: &AttackSpec,
    targeted: bool,
    outputs: &[AttackOutput],
    rounded: &[bool],
    seconds: f64,
) -> AttackRecord {
    let success: Vec<bool> = outputs.iter().flat_map(|o| o.success.clone()).collect();
    let pick = |f: &dyn Fn(&AttackOutput) -> &Vec<f32>| -> Vec<f64> {
        outputs.iter().flat_map(|o| f(o).iter().zip(&o.success).filter(|(_, s)| **s).map(|(v, _)| *v as f64).collect::<Vec<_>>()).collect()
    };
    let l2 = pick(&|o| &o.l2);
    let li = pick(&|o| &o.linf);
    let n = success.len().max(1) as f64;
    AttackRecord {
        dataset: dataset.into(),
        model: model.into(),
        defense: defense.into(),
        adaptive: adaptive && defense != "none",
        attack: spec.clone(),
        targeted,
        images: success.len(),
        success_rate: success.iter().filter(|s| **s).count() as f64 / n,
        mean_l2: mean(&l2),
        median_l2: median(&l2),
        mean_linf: mean(&li),
        rounded_success_rate: rounded.iter().filter(|s| **s).count() as f64 / n,
        seconds,
    }
}
