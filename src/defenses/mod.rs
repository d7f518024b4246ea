//! Defenses, each a piece the data flows through after the model's input (image -> squeezers /
//! models -> verdict), and each an [`AttackTarget`](crate::attacks::AttackTarget) so the attack
//! engine can aim at it: non-adaptively (gradients of the bare model, verdict of the defended
//! system) or adaptively (gradients through the defense, or through a substitute where it has
//! none).

pub mod squeeze;

pub use squeeze::{FeatureSqueezingDetector, Preprocessed, SqueezeConfig};
