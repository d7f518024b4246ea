//! Defenses, each a piece the data flows through after the input (image -> squeezers /
//! models -> verdict): preprocessing (the squeezers of [`crate::squeezers`]) and detectors, each
//! implementing [`crate::target::Detector`] so that [`crate::system`] can compose any of them
//! into one defended system that attacks aim at, adaptively or not.

pub mod detector_panel;
pub mod detectors;
pub mod specialists;
pub mod squeeze;

pub use specialists::VoteDetector;
pub use squeeze::{SqueezeConfig, SqueezeDetector};
