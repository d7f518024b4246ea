//! Any number of named classifiers per data set (the generalist now; specialists and detector
//! networks in the later case studies), each checked against its manifest when it is loaded and
//! kept twice: plain for verdicts, frozen on the autodiff device for attacks. Loaded lazily: the
//! page hands over the bytes it fetched when a defense needs them, the CLI reads `models/`.

use super::detectors::{load_detector, DetectorKind, DetectorManifest, DetectorWeights};
use super::ensemble::{load_ensemble, Ensemble, EnsembleManifest};
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

/// A stacked ensemble (the generalist first, then the specialists), ready like a classifier.
pub struct LoadedEnsemble {
    pub manifest: EnsembleManifest,
    pub model: Ensemble,
    /// Frozen on the autodiff device.
    pub grad_model: Ensemble,
}

/// A trained detector of case study 3 (Gong, Metzen, Feinman), ready like a classifier.
pub struct LoadedDetector {
    pub manifest: DetectorManifest,
    pub model: DetectorWeights,
    /// On the autodiff device, frozen.
    pub grad_model: DetectorWeights,
}

/// Named classifiers (and ensembles of them, and detectors) on one device.
pub struct ModelSet {
    device: Device,
    classifiers: BTreeMap<String, LoadedClassifier>,
    ensembles: BTreeMap<String, LoadedEnsemble>,
    detectors: BTreeMap<String, LoadedDetector>,
}

impl ModelSet {
    pub fn new(device: Device) -> Self {
        ModelSet { device, classifiers: BTreeMap::new(), ensembles: BTreeMap::new(), detectors: BTreeMap::new() }
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

    /// Checks an ensemble's weights against its manifest and stacks them behind its generalist,
    /// which must be loaded with the weights the manifest names. Kept under the weights' stem
    /// (`mnist-specialists`).
    pub fn insert_ensemble(&mut self, manifest: EnsembleManifest, weights: &[u8]) -> Result<&LoadedEnsemble, String> {
        let g = self.get(&manifest.generalist)?;
        if g.manifest.sha256 != manifest.generalist_sha256 {
            return Err(format!("the specialists were trained from other weights of '{}' than the loaded ones; retrain them (lab train specialists)", manifest.generalist));
        }
        let model = load_ensemble(&manifest, weights, &g.model, &self.device).map_err(|e| e.to_string())?;
        let grad_model = load_ensemble(&manifest, weights, &g.grad_model, &self.device.clone().autodiff()).map_err(|e| e.to_string())?.freeze();
        let name = manifest.weights.rsplit_once('.').map_or(manifest.weights.as_str(), |(stem, _)| stem).to_string();
        self.ensembles.insert(name.clone(), LoadedEnsemble { manifest, model, grad_model });
        Ok(&self.ensembles[&name])
    }

    pub fn ensemble(&self, name: &str) -> Result<&LoadedEnsemble, String> {
        self.ensembles.get(name).ok_or_else(|| format!("the ensemble '{name}' is not loaded"))
    }

    /// The Specialists+1 ensemble of a data set (`<dataset>-specialists`), if loaded.
    pub fn specialists(&self, dataset: DatasetKind) -> Option<&LoadedEnsemble> {
        self.ensembles.get(&format!("{}-specialists", dataset.name()))
    }

    /// Checks a detector's file against its manifest and keeps it under its stem
    /// (`cifar10-gong`); the classifier it was trained on must be loaded, with those weights.
    pub fn insert_detector(&mut self, manifest: DetectorManifest, bytes: &[u8]) -> Result<&LoadedDetector, String> {
        let g = self.get(&manifest.classifier)?;
        if g.manifest.sha256 != manifest.classifier_sha256 {
            return Err(format!(
                "the {} detector was trained on other weights of '{}' than the loaded ones; retrain it (lab train detector {})",
                manifest.kind.name(), manifest.classifier, manifest.kind.name()
            ));
        }
        let model = load_detector(&manifest, bytes, &self.device).map_err(|e| e.to_string())?;
        let grad_model = match load_detector(&manifest, bytes, &self.device.clone().autodiff()).map_err(|e| e.to_string())? {
            DetectorWeights::Gong(m) => DetectorWeights::Gong(m.freeze()),
            DetectorWeights::Metzen(m) => DetectorWeights::Metzen(m.freeze()),
            sample => sample,
        };
        let name = manifest.name().to_string();
        self.detectors.insert(name.clone(), LoadedDetector { manifest, model, grad_model });
        Ok(&self.detectors[&name])
    }

    pub fn detector(&self, name: &str) -> Result<&LoadedDetector, String> {
        self.detectors.get(name).ok_or_else(|| format!("the detector '{name}' is not loaded"))
    }

    /// A data set's detector of a kind, if loaded.
    pub fn detector_of(&self, dataset: DatasetKind, kind: DetectorKind) -> Option<&LoadedDetector> {
        self.detectors.get(&kind.file_stem(dataset))
    }

    /// Loads `<dir>/<dataset>-<kind>.json` and its file, unless already loaded.
    #[cfg(not(target_family = "wasm"))]
    pub fn load_detector_from_dir(&mut self, dir: &std::path::Path, dataset: DatasetKind, kind: DetectorKind) -> Result<&LoadedDetector, String> {
        let name = kind.file_stem(dataset);
        if !self.detectors.contains_key(&name) {
            let mpath = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&mpath).map_err(|e| format!("{}: {e} (train it first: lab train detector {})", mpath.display(), kind.name()))?;
            let manifest = DetectorManifest::parse(&text).map_err(|e| format!("{}: {e}", mpath.display()))?;
            let wpath = dir.join(&manifest.weights);
            let bytes = std::fs::read(&wpath).map_err(|e| format!("{}: {e}", wpath.display()))?;
            self.insert_detector(manifest, &bytes).map_err(|e| format!("{}: {e}", wpath.display()))?;
        }
        self.detector(&name)
    }

    /// Loads `<dir>/<name>.json` (an ensemble manifest) and its weights, unless already loaded.
    #[cfg(not(target_family = "wasm"))]
    pub fn load_ensemble_from_dir(&mut self, dir: &std::path::Path, name: &str) -> Result<&LoadedEnsemble, String> {
        if !self.ensembles.contains_key(name) {
            let mpath = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&mpath).map_err(|e| format!("{}: {e} (train it first: lab train specialists)", mpath.display()))?;
            let manifest: EnsembleManifest = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", mpath.display()))?;
            let wpath = dir.join(&manifest.weights);
            let bytes = std::fs::read(&wpath).map_err(|e| format!("{}: {e}", wpath.display()))?;
            self.insert_ensemble(manifest, &bytes).map_err(|e| format!("{}: {e}", wpath.display()))?;
        }
        self.ensemble(name)
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
