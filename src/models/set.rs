//! Any number of named classifiers per data set (the generalist now; specialists and detector
//! networks in the later case studies), each checked against its manifest when it is loaded and
//! kept twice: plain for verdicts, frozen on the autodiff device for attacks. Loaded lazily: the
//! page hands over the bytes it fetched when a defense needs them, the CLI reads `models/`.

use super::{load_model, Classifier, DatasetKind, ModelManifest};
use burn::prelude::*;
use std::collections::BTreeMap;

/// A classifier ready for predictions and for attacks.
pub struct LoadedClassifier {
    pub manifest: ModelManifest,
    pub model: Classifier,
    /// Frozen on the autodiff device: gradients flow to the input only, dropout off.
    pub grad_model: Classifier,
}

impl LoadedClassifier {
    /// The name the model set knows it by: its weights file without the extension.
    pub fn name(&self) -> &str {
        ModelSet::name_of(&self.manifest)
    }
}

/// Named classifiers on one device.
pub struct ModelSet {
    device: Device,
    classifiers: BTreeMap<String, LoadedClassifier>,
}

impl ModelSet {
    pub fn new(device: Device) -> Self {
        ModelSet { device, classifiers: BTreeMap::new() }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `mnist.safetensors` -> `mnist`.
    pub fn name_of(manifest: &ModelManifest) -> &str {
        manifest.weights.rsplit_once('.').map_or(manifest.weights.as_str(), |(stem, _)| stem)
    }

    /// The generalist of a data set (the classifier the case studies defend) is named after it.
    pub fn generalist_name(dataset: DatasetKind) -> &'static str {
        dataset.name()
    }

    /// Checks `weights` against the manifest (sha256, tensor shapes) and keeps the classifier,
    /// replacing one of the same name.
    pub fn insert(&mut self, manifest: ModelManifest, weights: &[u8]) -> Result<&LoadedClassifier, String> {
        let model = load_model(&manifest, weights, &self.device).map_err(|e| e.to_string())?;
        let grad_model = load_model(&manifest, weights, &self.device.clone().autodiff()).map_err(|e| e.to_string())?.freeze();
        let name = Self::name_of(&manifest).to_string();
        self.classifiers.insert(name.clone(), LoadedClassifier { manifest, model, grad_model });
        Ok(&self.classifiers[&name])
    }

    pub fn get(&self, name: &str) -> Result<&LoadedClassifier, String> {
        self.classifiers.get(name).ok_or_else(|| format!("the classifier '{name}' is not loaded"))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.classifiers.contains_key(name)
    }

    /// The generalist of a data set.
    pub fn generalist(&self, dataset: DatasetKind) -> Result<&LoadedClassifier, String> {
        self.get(Self::generalist_name(dataset)).map_err(|_| format!("the {} model is not loaded yet", dataset.name()))
    }

    /// Loads `<dir>/<name>.json` and the weights it names, unless already loaded.
    #[cfg(not(target_family = "wasm"))]
    pub fn load_from_dir(&mut self, dir: &std::path::Path, name: &str) -> Result<&LoadedClassifier, String> {
        if !self.classifiers.contains_key(name) {
            let mpath = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&mpath).map_err(|e| format!("{}: {e} (train it first: lab train {name})", mpath.display()))?;
            let manifest = ModelManifest::parse(&text).map_err(|e| format!("{}: {e}", mpath.display()))?;
            let wpath = dir.join(&manifest.weights);
            let bytes = std::fs::read(&wpath).map_err(|e| format!("{}: {e}", wpath.display()))?;
            self.insert(manifest, &bytes).map_err(|e| format!("{}: {e}", wpath.display()))?;
        }
        self.get(name)
    }
}
