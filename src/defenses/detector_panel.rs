//! What the page asks of case study 3's detectors, through the [`Engine`]: load one (its file
//! checked against its manifest), which files a spelled system still needs, the systems to offer,
//! and the panel for one image (each detector's score against its threshold, the OR-ensemble's
//! verdict). `src/web/` only converts these.

use crate::data::DatasetKind;
use crate::engine::Engine;
use crate::models::detectors::{DetectorKind, DetectorManifest};
use crate::system::{Preset, PARTS};

/// The systems with case study 3's detectors (CIFAR-10): each alone, the three together, and
/// the three with the feature-squeezing detector.
pub const DETECTOR_PRESETS: [&str; 5] = ["gong", "metzen", "feinman", "gong+metzen+feinman", "detector+gong+metzen+feinman"];

/// One detector's row of the panel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectorRow {
    /// As systems spell it (`gong`, `detector`, ...).
    pub name: String,
    pub label: String,
    pub score: f32,
    pub threshold: f32,
    pub flagged: bool,
    /// What the score means and which side is flagged.
    pub reading: String,
}

/// The panel for one image under a spelled system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectorReport {
    pub system: String,
    /// The system's class and probabilities.
    pub predicted: usize,
    pub probs: Vec<f32>,
    pub detectors: Vec<DetectorRow>,
    /// The OR-ensemble: flagged when any detector is.
    pub flagged: bool,
}

/// How the page names a detector of a system.
pub fn detector_label(name: &str) -> String {
    match DetectorKind::parse(name) {
        Ok(k) => k.label().to_string(),
        Err(_) if name.starts_with("feature squeezing") => format!("Xu et al. ({name})"),
        Err(_) => name.to_string(),
    }
}

impl Engine {
    /// Checks a detector's file against its manifest (sha256, shapes; trained on the loaded
    /// classifier's weights) and keeps it, so that systems naming it can be built.
    pub fn load_detector(&mut self, manifest_json: &str, bytes: &[u8]) -> Result<&DetectorManifest, String> {
        let manifest = DetectorManifest::parse(manifest_json)?;
        let (dataset, kind) = (manifest.dataset, manifest.kind);
        self.models.generalist(dataset).map_err(|_| format!("load the {} model before its {} detector", dataset.name(), kind.name()))?;
        self.models.insert_detector(manifest, bytes).map_err(|e| format!("the {} detector: {e}", kind.name()))?;
        Ok(&self.models.detector_of(dataset, kind).expect("just inserted").manifest)
    }

    /// The manifests (in the models folder) of the detectors a spelling names that are not
    /// loaded yet, in the order named; an unknown part is an error.
    pub fn detector_downloads(&self, dataset: DatasetKind, spelling: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for part in spelling.split('+').map(str::trim).filter(|p| !p.is_empty()) {
            if !PARTS.contains(&part) {
                return Err(format!("unknown defense '{part}' (expected parts {} joined by '+')", PARTS.join(", ")));
            }
            if let Ok(kind) = DetectorKind::parse(part) {
                if self.models.detector_of(dataset, kind).is_none() {
                    out.push(format!("{}.json", kind.file_stem(dataset)));
                }
            }
        }
        Ok(out)
    }

    /// The systems with case study 3's detectors the page can offer (CIFAR-10 only; none for
    /// other data sets): available when every file is loaded (else `reason` says they are
    /// downloaded when chosen) and the squeezing detector calibrated where one is named.
    pub fn detector_presets(&self, dataset: DatasetKind) -> Vec<Preset> {
        if dataset != DatasetKind::Cifar10 {
            return Vec::new();
        }
        DETECTOR_PRESETS
            .iter()
            .map(|name| {
                let parts: Vec<String> = name.split('+').map(String::from).collect();
                let downloads = self.detector_downloads(dataset, name).unwrap_or_default();
                let squeeze = if parts.iter().any(|p| p == "detector") { self.squeeze_config(dataset).err().map(|e| e.to_string()) } else { None };
                let reason = squeeze.or_else(|| (!downloads.is_empty()).then(|| format!("downloaded when this defense is chosen: {}", downloads.join(", "))));
                Preset {
                    name: name.to_string(),
                    label: parts.iter().map(|p| if p == "detector" { "feature-squeezing detector".to_string() } else { detector_label(p) }).collect::<Vec<_>>().join(" + "),
                    parts,
                    available: reason.is_none(),
                    reason,
                    download: downloads.first().cloned(),
                }
            })
            .collect()
    }

    /// The detector panel for one image: each detector of the spelled system with its score
    /// against its threshold, and the OR-ensemble's verdict.
    pub async fn detector_report(&self, dataset: DatasetKind, pixels: &[f32], spelling: &str) -> Result<DetectorReport, String> {
        let (spec, judgement) = self.judge(dataset, pixels, spelling).await?;
        if spec.detectors.is_empty() {
            return Err(format!("the system '{}' has no detector", spec.name));
        }
        let detectors = judgement
            .detectors
            .iter()
            .zip(&spec.detectors)
            .map(|(r, d)| {
                let name = match d.as_learned() {
                    Some((kind, _)) => kind.name().to_string(),
                    None => "detector".to_string(),
                };
                DetectorRow { label: detector_label(&r.name), name, score: r.score, threshold: r.threshold, flagged: r.flagged, reading: d.reading().to_string() }
            })
            .collect();
        Ok(DetectorReport { system: spec.name, predicted: judgement.predicted, probs: judgement.probs, detectors, flagged: judgement.flagged })
    }
}
