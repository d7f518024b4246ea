//! Defenses, each a piece the data flows through after the model's input (image -> squeezers /
//! models -> verdict), and each an [`AttackTarget`](crate::attacks::AttackTarget) so the attack
//! engine can aim at it: non-adaptively (gradients of the bare model, verdict of the defended
//! system) or adaptively (gradients through the defense, or through a substitute where it has
//! none).

pub mod squeeze;

pub use squeeze::{FeatureSqueezingDetector, Preprocessed, SqueezeConfig};

use crate::attacks::{AttackTarget, ModelTarget};
use crate::models::Classifier;

/// The system an attack aims at, by name: `none` (the bare model), `bit-depth`, `median`
/// (preprocessing) or `detector` (feature-squeezing detector). `adaptive` aims at the defense
/// itself; otherwise the attack follows the bare model's gradients and is judged by the system.
pub fn attack_target<'a>(
    defense: &str,
    adaptive: bool,
    squeeze: Option<&'a SqueezeConfig>,
    grad_model: &'a Classifier,
    model: &'a Classifier,
) -> Result<Box<dyn AttackTarget + 'a>, String> {
    let need = || squeeze.ok_or_else(|| format!("the {defense} defense is not calibrated for this data set (lab defend)"));
    Ok(match defense {
        "none" | "" => Box::new(ModelTarget { grad_model, model }),
        "bit-depth" => Box::new(Preprocessed { squeezer: need()?.bit_depth, grad_model, model, adaptive }),
        "median" => Box::new(Preprocessed { squeezer: need()?.median, grad_model, model, adaptive }),
        "detector" => Box::new(FeatureSqueezingDetector { config: need()?, grad_model, model, adaptive }),
        other => return Err(format!("unknown defense '{other}' (expected none, bit-depth, median or detector)")),
    })
}
