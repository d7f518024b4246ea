//! The JSON manifest committed beside each model's weights, and loading weights safely: the
//! sha256 of the file must match the manifest and every tensor must fit the architecture, so a
//! stale, truncated or foreign file is reported instead of silently giving nonsense.

use super::{Classifier, ClassifierConfig, DatasetKind};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TrainingRecord {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: String,
    pub learning_rate: f64,
    pub schedule: String,
    pub augmentation: String,
    pub seed: u64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Test accuracy after each epoch.
    pub accuracy_per_epoch: Vec<f64>,
    /// Settings changed when the run resumed ("after epoch N: ..."); `augmentation` and
    /// `epochs` describe the end of the run.
    #[serde(default)]
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ModelManifest {
    pub dataset: DatasetKind,
    /// Human-readable architecture.
    pub architecture: String,
    /// The exact configuration the weights decode into.
    pub config: ClassifierConfig,
    pub classes: Vec<String>,
    /// [channels, height, width]; pixels are in [0, 1].
    pub input: [usize; 3],
    /// File name of the weights, beside the manifest.
    pub weights: String,
    pub sha256: String,
    pub bytes: usize,
    pub parameters: usize,
    /// Accuracy on the full test set, measured after training.
    pub test_accuracy: f64,
    pub test_images: usize,
    pub training: TrainingRecord,
}

#[derive(Debug)]
pub enum ModelError {
    Manifest(String),
    HashMismatch { expected: String, found: String },
    Weights(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Manifest(m) => write!(f, "model manifest is not valid: {m}"),
            ModelError::HashMismatch { expected, found } => write!(
                f,
                "weights file is corrupted or stale: its sha256 is {found}, the manifest expects {expected}"
            ),
            ModelError::Weights(m) => write!(f, "weights do not fit the architecture: {m}"),
        }
    }
}

impl std::error::Error for ModelError {}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelManifest {
    pub fn parse(json: &str) -> Result<Self, ModelError> {
        let m: ModelManifest = serde_json::from_str(json).map_err(|e| ModelError::Manifest(e.to_string()))?;
        if m.config != ClassifierConfig::for_dataset(m.dataset) {
            return Err(ModelError::Manifest(format!(
                "architecture {:?} is not the {} classifier this lab knows",
                m.config,
                m.dataset.name()
            )));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }
}

/// Decodes safetensors bytes into the architecture, without a manifest (checkpoints, tests).
pub fn decode_weights(config: &ClassifierConfig, bytes: &[u8], device: &Device) -> Result<Classifier, ModelError> {
    // Check the container before handing it to the store: a clear message beats a deep one.
    if bytes.len() < 8 {
        return Err(ModelError::Weights(format!("file is {} bytes, too short for safetensors", bytes.len())));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    if header_len > (bytes.len() - 8) as u64 {
        return Err(ModelError::Weights(format!(
            "not a safetensors file or truncated: header claims {header_len} bytes, file has {}",
            bytes.len()
        )));
    }
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = model.load_from(&mut store).map_err(|e| ModelError::Weights(e.to_string()))?;
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(ModelError::Weights(errors.join("; ")));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(ModelError::Weights(format!("missing tensors: {}", missing.join(", "))));
    }
    if !result.unused.is_empty() {
        return Err(ModelError::Weights(format!("unexpected tensors: {}", result.unused.join(", "))));
    }
    Ok(model)
}

/// Checks the weights against the manifest and decodes them.
pub fn load_model(manifest: &ModelManifest, bytes: &[u8], device: &Device) -> Result<Classifier, ModelError> {
    let found = sha256_hex(bytes);
    if found != manifest.sha256 {
        return Err(ModelError::HashMismatch { expected: manifest.sha256.clone(), found });
    }
    decode_weights(&manifest.config, bytes, device)
}

/// Safetensors bytes of a model (what `models/*.safetensors` hold).
pub fn encode_weights(model: &Classifier) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None);
    model.save_into(&mut store).map_err(|e| ModelError::Weights(e.to_string()))?;
    store.get_bytes().map_err(|e| ModelError::Weights(e.to_string()))
}
