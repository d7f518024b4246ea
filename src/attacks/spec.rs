//! An attack described as data: which attack, with its parameters (foolbox / ART names), built
//! from what a person gives (command line, page) with the library's defaults for the rest, and
//! run against any [`AttackTarget`] (C&W with He et al.'s random restarts).

use super::{AttackOutput, AttackTarget, CwParams, FgsmParams, Goal, Observer, PgdParams};
use crate::data::DatasetKind;
use burn::prelude::*;

/// The usual L-infinity budget of each data set: 0.3 on MNIST (Madry et al.), 8/255 on
/// CIFAR-10 (Madry et al.; 0.3 would be a different picture altogether).
pub fn default_epsilon(dataset: DatasetKind) -> f32 {
    match dataset {
        DatasetKind::Mnist => 0.3,
        DatasetKind::Cifar10 => 8.0 / 255.0,
    }
}

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
    /// `name` is cw, fgsm or pgd; what `o` leaves out takes the default, with the
    /// L-infinity budget of the data set ([`default_epsilon`]).
    pub fn build(name: &str, o: &AttackOptions, dataset: DatasetKind) -> Result<Self, String> {
        let positive = |what: &str, v: f64| if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{what} must be a positive number, got {v}")) };
        let spec = match name.to_ascii_lowercase().as_str() {
            "fgsm" => AttackSpec::Fgsm(FgsmParams { epsilon: o.epsilon.unwrap_or(default_epsilon(dataset)) }),
            "pgd" => {
                let d = PgdParams::default();
                let epsilon = o.epsilon.unwrap_or(default_epsilon(dataset));
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

    /// The attack with its budget and every parameter that differs from the default (the
    /// tables show them, so a run can be repeated from its row).
    pub fn name(&self) -> String {
        match self {
            AttackSpec::Fgsm(p) => format!("FGSM eps={}", p.epsilon),
            AttackSpec::Pgd(p) => {
                let start = if p.random_start { "" } else { ", no random start" };
                format!("PGD eps={} ({} steps of {}{start})", p.epsilon, p.steps, p.step_size)
            }
            AttackSpec::Cw(p) => {
                let d = CwParams::default();
                let mut parts = vec![format!("steps {}", p.steps), format!("binary_search_steps {}", p.binary_search_steps), format!("confidence {}", p.confidence)];
                if p.initial_const != d.initial_const {
                    parts.push(format!("initial_const {}", p.initial_const));
                }
                if p.learning_rate != d.learning_rate {
                    parts.push(format!("learning_rate {}", p.learning_rate));
                }
                if !p.abort_early {
                    parts.push("no early abort".into());
                }
                if let Some(r) = p.start_noise {
                    parts.push(format!("random starts within {r}"));
                }
                if p.constants_at_once > 1 {
                    parts.push(format!("{} constants at once", p.constants_at_once));
                }
                if p.restarts > 0 {
                    parts.push(format!("{} restarts", p.restarts));
                }
                format!("CW-L2 ({})", parts.join(", "))
            }
        }
    }

    /// Every attack's defaults for a data set (the command line's: C&W's own budget).
    pub fn defaults(dataset: DatasetKind) -> Vec<AttackSpec> {
        Self::with_options(dataset, &AttackOptions::default())
    }

    /// The page's defaults: the same attacks with a budget that finishes while a person
    /// watches (C&W 100 steps x 3 rounds, starting from c = 1 at learning rate 0.05 so that the
    /// first round already succeeds on most digits, instead of C&W's 1000 x 9 from 1e-3, 30
    /// times the steps); the full budget stays one edit away in the page.
    pub fn interactive_defaults(dataset: DatasetKind) -> Vec<AttackSpec> {
        let o = AttackOptions { steps: Some(100), binary_search_steps: Some(3), initial_const: Some(1.0), learning_rate: Some(0.05), ..AttackOptions::default() };
        Self::with_options(dataset, &o)
    }

    fn with_options(dataset: DatasetKind, o: &AttackOptions) -> Vec<AttackSpec> {
        ["cw", "pgd", "fgsm"]
            .iter()
            .map(|n| {
                // PGD keeps its own 40 steps: `steps` above is C&W's budget.
                let o = if *n == "pgd" { AttackOptions { steps: None, ..o.clone() } } else { o.clone() };
                Self::build(n, &o, dataset).expect("the defaults are valid")
            })
            .collect()
    }

    pub async fn run<O: Observer>(&self, target: &dyn AttackTarget, images: Tensor<4>, goal: &Goal, observer: &mut O) -> Result<AttackOutput, String> {
        match self {
            AttackSpec::Fgsm(p) => super::gradient::fgsm(target, images, goal, p, observer).await,
            AttackSpec::Pgd(p) => super::gradient::pgd(target, images, goal, p, observer).await,
            AttackSpec::Cw(p) => {
                let mut out = Self::cw_once(p, target, images.clone(), goal, observer).await?;
                // He et al.: the images not fooled yet get fresh runs from random starting points.
                for _ in 0..p.restarts {
                    let failed: Vec<usize> = (0..out.success.len()).filter(|&i| !out.success[i]).collect();
                    if failed.is_empty() || out.cancelled {
                        break;
                    }
                    let index = Tensor::<1, Int>::from_data(TensorData::new(failed.iter().map(|&i| i as i64).collect::<Vec<_>>(), [failed.len()]), &images.device());
                    let again = CwParams { start_noise: Some(p.start_noise.unwrap_or(super::cw::RESTART_NOISE)), restarts: 0, ..p.clone() };
                    let more = Self::cw_once(&again, target, images.clone().select(0, index), &goal.subset(&failed), observer).await?;
                    out.merge(&failed, more);
                }
                Ok(out)
            }
        }
    }

    async fn cw_once<O: Observer>(p: &CwParams, target: &dyn AttackTarget, images: Tensor<4>, goal: &Goal, observer: &mut O) -> Result<AttackOutput, String> {
        if p.constants_at_once > 1 && images.dims()[0] == 1 {
            super::cw::cw_l2_many_constants(target, images, goal, p, p.constants_at_once, observer).await
        } else {
            super::cw::cw_l2(target, images, goal, p, observer).await
        }
    }
}

