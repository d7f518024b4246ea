//! advlab: classifiers, defenses and attacks of "Adversarial Example Defenses: Ensembles of
//! Weak Defenses are not Strong" (He, Wei, Chen, Carlini, Song, 2017), written once on burn's
//! runtime `Device` and run natively (CLI, tests) and in the browser (WebGPU or Flex in wasm).
//!
//! Data flows one way: image -> preprocess -> models -> (defenses) -> verdict; attacks drive
//! the same pieces through gradients.

pub mod attacks;
pub mod data;
pub mod defenses;
pub mod engine;
pub mod evaluate;
pub mod inference;
pub mod models;
pub mod preprocess;
pub mod records;
pub mod samples;
pub mod squeezers;
pub mod system;
pub mod target;
#[cfg(not(target_family = "wasm"))]
pub mod train;
#[cfg(target_family = "wasm")]
pub mod web;
