//! The resumable training state: one file, overwritten after every epoch, holding the
//! metadata (epoch, schedule, changes), the model, Adam's state and the running weight mean,
//! each as a length-prefixed section.

use super::TrainOptions;
use crate::models::{Classifier, ClassifierConfig, DatasetKind};
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;
use std::path::Path;

/// What a checkpoint holds besides the weights and the optimizer state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    pub dataset: DatasetKind,
    pub options: TrainOptions,
    pub epochs_done: usize,
    pub seconds: f64,
    pub images_seen: usize,
    pub accuracy_per_epoch: Vec<f64>,
    /// Settings changed when the run resumed ("after epoch N: ..."), in order.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Epochs done when the current cosine phase began (0: the run has one phase).
    #[serde(default)]
    pub phase_start: usize,
    /// Weight averaging on: the mean covers the weights after each epoch past this one.
    #[serde(default)]
    pub average_from: Option<usize>,
    /// Test accuracy of that mean after each averaged epoch.
    #[serde(default)]
    pub average_accuracy_per_epoch: Vec<f64>,
}

impl CheckpointMeta {
    /// The epochs (1-based, inclusive) whose weights the mean covers, when there is a mean.
    pub fn averaged_epochs(&self) -> Option<(usize, usize)> {
        self.average_from.filter(|&from| self.epochs_done > from).map(|from| (from + 1, self.epochs_done))
    }
}

const CKPT_MAGIC: &[u8; 8] = b"ADVCKPT1";

fn write_section(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u64).to_le_bytes());
    out.extend(bytes);
}

fn read_section<'a>(bytes: &'a [u8], at: &mut usize, path: &Path) -> Result<&'a [u8], String> {
    let bad = || format!("{}: checkpoint is truncated or corrupted", path.display());
    let len = u64::from_le_bytes(bytes.get(*at..*at + 8).ok_or_else(bad)?.try_into().unwrap()) as usize;
    let s = bytes.get(*at + 8..*at + 8 + len).ok_or_else(bad)?;
    *at += 8 + len;
    Ok(s)
}

/// Writes the checkpoint atomically (temporary file, then rename): a run killed while writing
/// leaves the previous checkpoint intact.
/// Sections: header, weights, optimizer state, and the weight average when there is one.
pub fn save_checkpoint(
    path: &Path,
    meta: &CheckpointMeta,
    model: &Classifier,
    optim: &ModuleOptimizer,
    average: Option<&Classifier>,
) -> Result<(), String> {
    let mut out = CKPT_MAGIC.to_vec();
    write_section(&mut out, serde_json::to_string(meta).unwrap().as_bytes());
    write_section(&mut out, &module_bytes(model)?);
    let optim_bytes = optim.into_bytes().map_err(|e| format!("cannot serialise the optimizer: {e:?}"))?;
    write_section(&mut out, &optim_bytes);
    if let Some(average) = average {
        write_section(&mut out, &module_bytes(average)?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("ckpt.tmp");
    std::fs::write(&tmp, &out).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

// Burnpack, not safetensors: it keeps the parameter ids the optimizer state is keyed by.
fn module_bytes(model: &Classifier) -> Result<Vec<u8>, String> {
    let mut store = BurnpackStore::from_bytes(None);
    model.save_into(&mut store).map_err(|e| format!("cannot serialise the model: {e}"))?;
    Ok(store.get_bytes().map_err(|e| format!("cannot serialise the model: {e}"))?.to_vec())
}

fn module_from(bytes: &[u8], config: &ClassifierConfig, device: &Device, path: &Path) -> Result<Classifier, String> {
    let mut model = config.init(device);
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())));
    let applied = model.load_from(&mut store).map_err(|e| format!("{}: model state: {e}", path.display()))?;
    if !applied.errors.is_empty() || !applied.missing.is_empty() {
        return Err(format!("{}: model state does not fit the architecture: {applied}", path.display()));
    }
    Ok(model)
}

/// What a checkpoint holds.
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    /// On the device it was loaded to (the autodiff one when training).
    pub model: Classifier,
    pub optim: ModuleOptimizer,
    /// The weight average, on `average_device`.
    pub average: Option<Classifier>,
}

/// Reads a checkpoint: weights onto `device`, the weight average (if any) onto `average_device`.
pub fn load_checkpoint(path: &Path, config: &ClassifierConfig, device: &Device, average_device: &Device) -> Result<Checkpoint, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 8 || &bytes[..8] != CKPT_MAGIC {
        return Err(format!("{}: not a checkpoint of this lab", path.display()));
    }
    let mut at = 8;
    let meta: CheckpointMeta = serde_json::from_slice(read_section(&bytes, &mut at, path)?)
        .map_err(|e| format!("{}: checkpoint header: {e}", path.display()))?;
    let model = module_from(read_section(&bytes, &mut at, path)?, config, device, path)?;
    let optim_bytes = read_section(&bytes, &mut at, path)?.to_vec();
    let optim = AdamConfig::new()
        .init()
        .from_bytes(Bytes::from_bytes_vec(optim_bytes))
        .map_err(|e| format!("{}: optimizer state: {e:?}", path.display()))?;
    let average = match meta.averaged_epochs() {
        Some(_) => Some(module_from(read_section(&bytes, &mut at, path)?, config, average_device, path)?),
        None => None,
    };
    Ok(Checkpoint { meta, model, optim, average })
}

