//! Defenses, each a piece the data flows through after the model's input (image -> squeezers /
//! models -> verdict), and each an [`AttackTarget`](crate::attacks::AttackTarget) so the attack
//! engine can aim at it: non-adaptively (gradients of the bare model, verdict of the defended
//! system) or adaptively (gradients through the defense, or through a substitute where it has
//! none).

pub mod squeeze;

pub use squeeze::{FeatureSqueezingDetector, Preprocessed, SqueezeConfig};

use crate::attacks::{AttackTarget, ModelTarget};
use crate::models::Classifier;

/// The defended system by name: `none` (the bare model), `bit-depth`, `median`
/// (preprocessing) or `detector` (feature-squeezing detector), as the target of an adaptive
/// attack (He et al.): gradients through the defense (a substitute where it has none), verdicts
/// from the real thing.
pub fn defended_system<'a>(
    defense: &str,
    squeeze: Option<&'a SqueezeConfig>,
    grad_model: &'a Classifier,
    model: &'a Classifier,
) -> Result<Box<dyn AttackTarget + 'a>, String> {
    let need = || squeeze.ok_or_else(|| format!("the {defense} defense is not calibrated for this data set (lab defend)"));
    Ok(match defense {
        "none" | "" => Box::new(ModelTarget { grad_model, model }),
        "bit-depth" => Box::new(Preprocessed { squeezer: need()?.bit_depth, grad_model, model }),
        "median" => Box::new(Preprocessed { squeezer: need()?.median, grad_model, model }),
        "detector" => Box::new(FeatureSqueezingDetector { config: need()?, grad_model, model }),
        other => return Err(format!("unknown defense '{other}' (expected none, bit-depth, median or detector)")),
    })
}
