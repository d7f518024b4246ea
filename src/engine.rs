//! What the page and the CLI both do with a model set, written once and tested natively: load
//! and check classifiers and calibrations, predict, build a defended system from its spelling,
//! judge an image, attack one image (with the 8-bit re-check of what a PNG holds) or a batch,
//! the feature-squeezing report, the attack defaults. `src/web/` only converts these types to
//! JavaScript and back; `src/cli/` prints them.

use crate::attacks::{AttackOptions, AttackOutput, AttackSpec, Goal, Observer};
use crate::data::{DatasetKind, ImageShape};
use crate::defenses::specialists::{self, VoteReport};
use crate::defenses::squeeze::{self, SqueezeConfig, SqueezeReport};
use crate::evaluate::run_against;
use crate::inference;
use crate::models::{EnsembleManifest, LoadedClassifier, ModelManifest, ModelSet};
use crate::models::detectors::{DetectorKind, DetectorManifest};
use crate::preprocess::quantize_8bit;
use crate::system::{self, ClassifierRef, DefendedSystem, DetectorReading, Judgement, Preset, SystemSpec};
use crate::target::AttackTarget;
use burn::prelude::*;
use std::collections::BTreeMap;

/// A model set with the feature-squeezing calibration of each data set.
pub struct Engine {
    pub models: ModelSet,
    squeeze: BTreeMap<&'static str, SqueezeConfig>,
}

/// What the page asks of an attack on one image (or a batch).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AttackRequest {
    pub attack: String,
    #[serde(default)]
    pub targeted: bool,
    pub target: Option<usize>,
    /// The system, as spelled (see [`crate::system`]); empty for the bare classifier.
    #[serde(default)]
    pub defense: String,
    /// Aim at the defense itself (He et al.) rather than at the bare model.
    #[serde(default)]
    pub adaptive: bool,
    #[serde(flatten)]
    pub options: AttackOptions,
}

/// An attack's example for one image, by the verdict of the system it is shown for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageOutcome {
    pub success: bool,
    pub cancelled: bool,
    pub l2: f32,
    pub linf: f32,
    pub predicted: usize,
    pub original_predicted: usize,
    pub attack: String,
    pub defense: String,
    pub adaptive: bool,
    pub flagged: bool,
    pub detectors: Vec<DetectorReading>,
    pub rounded: Rounded,
    /// The example (the original where the attack failed), CHW.
    #[serde(skip)]
    pub image: Vec<f32>,
    /// The system's probabilities on it.
    #[serde(skip)]
    pub probs: Vec<f32>,
}

/// The example rounded to 8-bit pixels (what a downloaded PNG holds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rounded {
    pub predicted: usize,
    pub still_adversarial: bool,
    #[serde(skip)]
    pub probs: Vec<f32>,
}

/// One image attacked: the outcome by the attacked system and, for a non-adaptive attack on a
/// defense, the example made on the bare model as the bare model sees it.
pub struct OneAttack {
    pub result: ImageOutcome,
    pub bare: Option<ImageOutcome>,
}

impl Engine {
    pub fn new(device: Device) -> Self {
        Engine { models: ModelSet::new(device), squeeze: BTreeMap::new() }
    }

    pub fn device(&self) -> &Device {
        self.models.device()
    }

    /// Checks and keeps a classifier (its weights against the manifest).
    pub fn load_classifier(&mut self, manifest_json: &str, weights: &[u8]) -> Result<&LoadedClassifier, String> {
        let manifest = ModelManifest::parse(manifest_json).map_err(|e| e.to_string())?;
        self.models.insert(manifest, weights)
    }

    /// Keeps a data set's feature-squeezing calibration, refused when it was calibrated on
    /// other weights than the loaded generalist.
    pub fn load_squeeze(&mut self, json: &str) -> Result<&SqueezeConfig, String> {
        let config: SqueezeConfig = serde_json::from_str(json).map_err(|e| format!("defense configuration is not valid: {e}"))?;
        let kind = config.dataset;
        let loaded = self.models.generalist(kind).map_err(|_| format!("load the {} model before its defenses", kind.name()))?;
        config.check_model(&loaded.manifest.sha256)?;
        self.squeeze.insert(kind.name(), config);
        Ok(&self.squeeze[kind.name()])
    }

    pub fn squeeze_config(&self, dataset: DatasetKind) -> Result<&SqueezeConfig, String> {
        self.squeeze.get(dataset.name()).ok_or_else(|| format!("the feature-squeezing defenses of {} are not loaded (lab defend {})", dataset.name(), dataset.name()))
    }

    pub fn generalist(&self, dataset: DatasetKind) -> Result<&LoadedClassifier, String> {
        self.models.generalist(dataset)
    }

    /// The description of a spelled system on the data set's generalist.
    pub fn system(&self, dataset: DatasetKind, spelling: &str) -> Result<SystemSpec, String> {
        let g = self.generalist(dataset)?;
        let classifier = ClassifierRef { name: g.name().to_string(), sha256: g.manifest.sha256.clone() };
        let learned: Vec<&DetectorManifest> = DetectorKind::ALL.iter().filter_map(|&k| self.models.detector_of(dataset, k)).map(|d| &d.manifest).collect();
        SystemSpec::parse_full(spelling, dataset, classifier, self.squeeze.get(dataset.name()), self.models.specialists(dataset).map(|e| &e.manifest), &learned)
    }

    /// The systems the page can offer for a data set: case study 1's, then (MNIST) Specialists+1,
    /// whose weights the page downloads when it is chosen (`download` names their manifest).
    pub fn presets(&self, dataset: DatasetKind) -> Vec<Preset> {
        let mut all = system::presets(self.squeeze_config(dataset).map_err(|e| e.to_string()));
        // Case study 3 (CIFAR-10): Gong, Metzen, Feinman and their OR-ensemble.
        all.extend(self.detector_presets(dataset));
        if dataset == DatasetKind::Mnist {
            let loaded = self.models.specialists(dataset).is_some();
            all.push(Preset {
                name: "specialists".into(),
                label: "Specialists+1 (generalist + 20 specialists, vote and its confidence detector)".into(),
                parts: vec!["specialists".into()],
                available: loaded,
                reason: (!loaded).then(|| "its classifiers are downloaded when this defense is chosen".into()),
                download: (!loaded).then(|| format!("{}-specialists.json", dataset.name())),
            });
        }
        all
    }

    /// Checks a Specialists+1 ensemble (its weights against its manifest, its generalist the
    /// loaded one) and keeps it, so that the `specialists` system can be built.
    pub fn load_specialists(&mut self, manifest_json: &str, weights: &[u8]) -> Result<&EnsembleManifest, String> {
        let manifest: EnsembleManifest = serde_json::from_str(manifest_json).map_err(|e| format!("the specialists' description is not valid: {e}"))?;
        if manifest.detector.is_none() {
            return Err("the specialists' vote-confidence detector is not calibrated (lab train specialists)".into());
        }
        self.models.generalist(manifest.dataset).map_err(|_| format!("load the {} model before its specialists", manifest.dataset.name()))?;
        Ok(&self.models.insert_ensemble(manifest, weights)?.manifest)
    }

    /// The Specialists+1 panel for one image: the vote table, the winner, the mean confidence
    /// against the minimum, the verdict.
    pub async fn vote_report(&self, dataset: DatasetKind, pixels: &[f32]) -> Result<VoteReport, String> {
        let system = self.system(dataset, "specialists")?.build(&self.models)?;
        let vote = system.vote().ok_or("the Specialists+1 system has no vote")?;
        specialists::report(vote, self.tensor(dataset, pixels, 1)?).await
    }

    /// Checks that `pixels` is one image (or `count` images) of the data set.
    pub fn tensor(&self, dataset: DatasetKind, pixels: &[f32], count: usize) -> Result<Tensor<4>, String> {
        let shape = dataset.shape();
        if pixels.len() != count * shape.len() {
            return Err(format!("expected {} pixel values, got {}", count * shape.len(), pixels.len()));
        }
        Ok(inference::to_tensor(pixels, shape, self.device()))
    }

    /// Softmax probabilities of the generalist for one image.
    pub async fn predict(&self, dataset: DatasetKind, pixels: &[f32]) -> Result<Vec<f32>, String> {
        let x = self.tensor(dataset, pixels, 1)?;
        inference::probabilities(&self.generalist(dataset)?.model, x).await
    }

    /// The verdict of a spelled system on one image.
    pub async fn judge(&self, dataset: DatasetKind, pixels: &[f32], spelling: &str) -> Result<(SystemSpec, Judgement), String> {
        let spec = self.system(dataset, spelling)?;
        let system = spec.build(&self.models)?;
        let x = self.tensor(dataset, pixels, 1)?;
        let j = system.judge(x).await?.remove(0);
        Ok((spec, j))
    }

    /// What the feature-squeezing panel shows for one image.
    pub async fn squeeze_report(&self, dataset: DatasetKind, pixels: &[f32]) -> Result<SqueezeReport, String> {
        let config = self.squeeze_config(dataset)?;
        let x = self.tensor(dataset, pixels, 1)?;
        squeeze::report(&self.generalist(dataset)?.model, config, x).await
    }

    /// Attacks one image. The untargeted goal is to leave the class the model gives now (a
    /// drawn digit has no label); a targeted one names the class to reach. A non-adaptive
    /// attack on a defense is made on the bare model and judged by the defense; both verdicts
    /// come back.
    pub async fn attack_one<O: Observer>(&self, dataset: DatasetKind, pixels: &[f32], request: &AttackRequest, observer: &mut O) -> Result<OneAttack, String> {
        let spec = AttackSpec::build(&request.attack, &request.options, dataset)?;
        let classes = self.generalist(dataset)?.manifest.classes.len();
        let x = self.tensor(dataset, pixels, 1)?;
        let before = inference::probabilities(&self.generalist(dataset)?.model, x.clone()).await?;
        let original = inference::argmax_rows(&before, classes)[0];
        let goal = match (request.targeted, request.target) {
            (true, Some(t)) if t < classes && t != original => Goal::targeted(vec![original], vec![t], classes),
            (true, Some(t)) => return Err(format!("target class {t} must be another class than the current prediction ({original})")),
            (true, None) => return Err("a targeted attack needs a target class".into()),
            (false, _) => Goal::untargeted(vec![original], classes),
        };
        let system_spec = self.system(dataset, &request.defense)?;
        let bare_spec = self.system(dataset, "none")?;
        let (system, bare) = (system_spec.build(&self.models)?, bare_spec.build(&self.models)?);
        let adaptive = request.adaptive || system_spec.is_bare();
        let against = run_against(&spec, &[&system as &dyn AttackTarget], &bare, adaptive, x, &goal, dataset.shape(), observer).await?;
        let label = |mut o: ImageOutcome, defense: &str, adaptive: bool| {
            (o.original_predicted, o.attack, o.defense, o.adaptive) = (original, spec.name(), defense.to_string(), adaptive);
            o
        };
        let result = label(describe(&system, &against.judged[0], &goal, dataset.shape()).await?, &system_spec.name, request.adaptive && !system_spec.is_bare());
        let bare = match &against.bare {
            Some(made) => Some(label(describe(&bare, made, &goal, dataset.shape()).await?, "none", false)),
            None => None,
        };
        Ok(OneAttack { result, bare })
    }

    /// Attacks a batch of images with known labels (targeted: at `targets`) against a spelled
    /// system, as the CLI's evaluations do.
    pub async fn attack_batch<O: Observer>(
        &self,
        dataset: DatasetKind,
        pixels: &[f32],
        labels: Vec<usize>,
        targets: Option<Vec<usize>>,
        request: &AttackRequest,
        observer: &mut O,
    ) -> Result<(AttackSpec, AttackOutput), String> {
        let classes = self.generalist(dataset)?.manifest.classes.len();
        if labels.is_empty() || labels.iter().any(|&l| l >= classes) {
            return Err("every image needs a label that is a class of this model".into());
        }
        let x = self.tensor(dataset, pixels, labels.len())?;
        let goal = match targets {
            Some(t) if t.len() == labels.len() && t.iter().zip(&labels).all(|(t, l)| *t < classes && t != l) => Goal::targeted(labels, t, classes),
            Some(_) => return Err("targets must name one other class per image".into()),
            None => Goal::untargeted(labels, classes),
        };
        let spec = AttackSpec::build(&request.attack, &request.options, dataset)?;
        let (system, bare) = (self.system(dataset, &request.defense)?.build(&self.models)?, self.system(dataset, "none")?.build(&self.models)?);
        let mut against = run_against(&spec, &[&system as &dyn AttackTarget], &bare, request.adaptive, x, &goal, dataset.shape(), observer).await?;
        Ok((spec, against.judged.remove(0)))
    }
}

/// An attack's (single-image) output as the page shows it, by `system`'s verdict: a failed
/// image comes back as the original, a cancelled run as its best so far; predictions are the
/// system's (for a preprocessing defense: of the squeezed image); the 8-bit check says whether
/// the rounded image still does what the goal asks.
pub async fn describe(system: &DefendedSystem<'_>, out: &AttackOutput, goal: &Goal, shape: ImageShape) -> Result<ImageOutcome, String> {
    let device = system.device();
    let judged = system.judge(inference::to_tensor(&out.images, shape, &device)).await?.remove(0);
    let rounded_pixels = quantize_8bit(&out.images);
    let rounded = system.judge(inference::to_tensor(&rounded_pixels, shape, &device)).await?.remove(0);
    // The verdict on the rounded image already says whether it still does what the goal asks
    // (the system's class, no margin, and no detector raised): no second pass over it.
    let class = goal.classes_of_interest()[0];
    let goal_met = if goal.is_targeted() { rounded.predicted == class } else { rounded.predicted != class };
    let still = out.success[0] && goal_met && !rounded.flagged;
    Ok(ImageOutcome {
        success: out.success[0],
        cancelled: out.cancelled,
        l2: out.l2[0],
        linf: out.linf[0],
        predicted: out.predicted[0],
        original_predicted: 0,
        attack: String::new(),
        defense: String::new(),
        adaptive: false,
        flagged: judged.flagged,
        detectors: judged.detectors,
        rounded: Rounded { predicted: rounded.predicted, still_adversarial: still, probs: rounded.probs },
        image: out.images.clone(),
        probs: judged.probs,
    })
}

/// The page's defaults for every attack on a data set ([`AttackSpec::interactive_defaults`]),
/// keyed by attack (`cw`, `pgd`, `fgsm`), as plain parameters: the page's one source for them.
pub fn attack_defaults(dataset: DatasetKind) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for spec in AttackSpec::interactive_defaults(dataset) {
        let mut v = serde_json::to_value(&spec).expect("parameters serialise");
        let name = v.as_object_mut().and_then(|o| o.remove("attack")).and_then(|n| n.as_str().map(String::from)).unwrap_or_default();
        out.insert(name, v);
    }
    serde_json::Value::Object(out)
}
