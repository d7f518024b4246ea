//! A defended system described as data ([`SystemSpec`]: its classifiers by name, its
//! preprocessing chain, its detectors with their thresholds and the weights they were
//! calibrated on, its voting rule), built once against a [`ModelSet`] into a [`DefendedSystem`]
//! that the attacks aim at and that judges images. The CLI, the page and the attack records all
//! use the same description, so a record names exactly the system it was measured on.
//!
//! How people spell a system (`lab attack --defense`, the page): parts joined by `+`, applied
//! in the order given: `bit-depth` and `median` (He et al.'s preprocessing defenses, the
//! squeezers of the data set's calibration file) and `detector` (Xu et al.'s feature-squeezing
//! detector); `none` is the bare classifier. E.g. `bit-depth+median+detector`. A JSON object
//! (the serialised [`SystemSpec`]) is accepted too. Detectors look at the input as it arrives,
//! before preprocessing; the system flags it when any detector does. `specialists` is a system
//! of its own (case study 2): Abbasi & Gagné's Specialists+1 ensemble with He et al.'s vote
//! and its vote-confidence detector (see [`crate::defenses::specialists`]). Case study 3's
//! detectors are parts too: `gong`, `metzen`, `feinman` (see [`crate::defenses::detectors`]),
//! combined with each other and with `detector` like any other, e.g. `gong+metzen+feinman`.

use crate::data::DatasetKind;
use crate::defenses::detectors::{FeinmanDetector, GongDetector, MetzenDetector};
use crate::defenses::specialists::VoteDetector;
use crate::models::detectors::{DetectorKind, DetectorManifest, DetectorWeights};
use crate::defenses::{SqueezeConfig, SqueezeDetector};
use crate::inference::{argmax_rows, read_f32};
use crate::models::{Classifier, Ensemble, EnsembleManifest, LoadedClassifier, ModelSet};
use crate::squeezers::Squeezer;
use crate::target::{AttackTarget, Detector};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// A classifier of the model set, named, with the sha256 of the weights the system was
/// described for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierRef {
    pub name: String,
    pub sha256: String,
}

/// A detector with every constant that decides its verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectorSpec {
    /// Xu et al.'s detector: the largest L1 distance between the softmax on the input and on
    /// each squeezed view, flagged above `threshold`.
    FeatureSqueezing {
        squeezers: Vec<Squeezer>,
        threshold: f32,
        /// The weights the threshold was calibrated on (a retrained model moves the scores).
        model_sha256: String,
        /// Fraction of benign held-out images it flags, and how many set the threshold.
        false_positive_rate: f64,
        calibration_images: usize,
    },
    /// Specialists+1 (He et al.'s description): flagged when the mean confidence of the
    /// classifiers that voted for the winner is below `min_confidence`.
    VoteConfidence {
        min_confidence: f32,
        /// The specialists' weights it was calibrated with.
        ensemble_sha256: String,
        false_positive_rate: f64,
        calibration_images: usize,
    },
    /// Case study 3: Gong et al.'s binary classifier on the input.
    Gong(LearnedDetectorSpec),
    /// Metzen et al.'s subnetwork on the classifier's feature maps.
    Metzen(LearnedDetectorSpec),
    /// Feinman et al.'s kernel density on the classifier's last hidden layer.
    Feinman(LearnedDetectorSpec),
}

/// A trained detector of case study 3 with the constants of its verdict: the file it loads
/// (by model-set name and sha256: weights or KDE sample) and the classifier weights it reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LearnedDetectorSpec {
    /// The model set's name (`cifar10-gong`).
    pub name: String,
    pub sha256: String,
    pub model_sha256: String,
    pub threshold: f32,
    /// The adaptive hinge aims this far under the threshold.
    pub margin: f32,
    pub false_positive_rate: f64,
    pub calibration_images: usize,
}

impl LearnedDetectorSpec {
    pub fn from_manifest(m: &DetectorManifest) -> Self {
        LearnedDetectorSpec {
            name: m.name().to_string(),
            sha256: m.sha256.clone(),
            model_sha256: m.classifier_sha256.clone(),
            threshold: m.threshold,
            margin: m.margin,
            false_positive_rate: m.false_positive_rate,
            calibration_images: m.calibration_images,
        }
    }
}

impl DetectorSpec {
    /// Case study 3's detector of a kind.
    pub fn learned(kind: DetectorKind, spec: LearnedDetectorSpec) -> Self {
        match kind {
            DetectorKind::Gong => DetectorSpec::Gong(spec),
            DetectorKind::Metzen => DetectorSpec::Metzen(spec),
            DetectorKind::Feinman => DetectorSpec::Feinman(spec),
        }
    }

    /// The kind and constants of a case-study-3 detector.
    pub fn as_learned(&self) -> Option<(DetectorKind, &LearnedDetectorSpec)> {
        match self {
            DetectorSpec::Gong(s) => Some((DetectorKind::Gong, s)),
            DetectorSpec::Metzen(s) => Some((DetectorKind::Metzen, s)),
            DetectorSpec::Feinman(s) => Some((DetectorKind::Feinman, s)),
            _ => None,
        }
    }

    /// The threshold on the detector's score (for the vote: 1 - the minimum confidence).
    pub fn threshold(&self) -> f32 {
        match self {
            DetectorSpec::FeatureSqueezing { threshold, .. } => *threshold,
            DetectorSpec::VoteConfidence { min_confidence, .. } => 1.0 - min_confidence,
            DetectorSpec::Gong(s) | DetectorSpec::Metzen(s) | DetectorSpec::Feinman(s) => s.threshold,
        }
    }

    /// What its score reads, in words: flagged above the threshold, except a vote confidence
    /// (1 - score), flagged below its minimum.
    pub fn reading(&self) -> &'static str {
        match self {
            DetectorSpec::FeatureSqueezing { .. } => "squeezing L1 score (flagged above)",
            DetectorSpec::VoteConfidence { .. } => "vote confidence (flagged below)",
            DetectorSpec::Gong(_) | DetectorSpec::Metzen(_) => "log-odds of adversarial (flagged above)",
            DetectorSpec::Feinman(_) => "negative log density (flagged above)",
        }
    }
}

/// How the classifiers of a system decide.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteRule {
    /// The only classifier decides.
    #[default]
    Single,
    /// He et al.'s Specialists+1 vote over the classifiers of an ensemble (the generalist
    /// first), `sets[k]` the classes of member k: if every member whose set holds some class c
    /// predicts c, c wins; otherwise all vote and the most votes win.
    Specialists { sets: Vec<Vec<usize>> },
}

/// A defended system as data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SystemSpec {
    pub dataset: DatasetKind,
    /// How it is spelled (`none`, `bit-depth+detector`, ...).
    pub name: String,
    pub classifiers: Vec<ClassifierRef>,
    /// Squeezers applied to the input before the classifiers, in this order.
    #[serde(default)]
    pub preprocess: Vec<Squeezer>,
    #[serde(default)]
    pub detectors: Vec<DetectorSpec>,
    #[serde(default)]
    pub vote: VoteRule,
}

/// The parts a system can be spelled with.
pub const PARTS: [&str; 8] = ["none", "bit-depth", "median", "detector", "gong", "metzen", "feinman", "specialists"];

impl SystemSpec {
    /// The bare classifier.
    pub fn bare(dataset: DatasetKind, classifier: ClassifierRef) -> Self {
        SystemSpec { dataset, name: "none".into(), classifiers: vec![classifier], preprocess: vec![], detectors: vec![], vote: VoteRule::Single }
    }

    /// Reads a spelling (`bit-depth+median+detector`, or a JSON description) for the data set's
    /// generalist `classifier`, taking squeezers and thresholds from its calibration `squeeze`
    /// (needed only when a part uses it; refused when calibrated on other weights).
    pub fn parse(text: &str, dataset: DatasetKind, classifier: ClassifierRef, squeeze: Option<&SqueezeConfig>) -> Result<Self, String> {
        Self::parse_with(text, dataset, classifier, squeeze, None)
    }

    /// [`Self::parse`], with the data set's Specialists+1 ensemble when it is loaded (needed
    /// only for the `specialists` part).
    pub fn parse_with(text: &str, dataset: DatasetKind, classifier: ClassifierRef, squeeze: Option<&SqueezeConfig>, specialists: Option<&EnsembleManifest>) -> Result<Self, String> {
        Self::parse_full(text, dataset, classifier, squeeze, specialists, &[])
    }

    /// [`Self::parse_with`], with the data set's trained detectors of case study 3 that are
    /// loaded (needed only for the `gong`, `metzen` and `feinman` parts).
    pub fn parse_full(
        text: &str,
        dataset: DatasetKind,
        classifier: ClassifierRef,
        squeeze: Option<&SqueezeConfig>,
        specialists: Option<&EnsembleManifest>,
        learned: &[&DetectorManifest],
    ) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            let spec: SystemSpec = serde_json::from_str(text).map_err(|e| format!("not a system description: {e}"))?;
            if spec.dataset != dataset {
                return Err(format!("the system is described for {}, not {}", spec.dataset.name(), dataset.name()));
            }
            return Ok(spec);
        }
        let parts: Vec<&str> = if text.is_empty() { vec!["none"] } else { text.split('+').map(str::trim).collect() };
        let mut spec = SystemSpec::bare(dataset, classifier);
        if parts == ["none"] {
            return Ok(spec);
        }
        if parts.contains(&"specialists") {
            if parts.len() > 1 {
                return Err(format!("'specialists' is a system of its own (its detector reads the vote), not a part to combine ('{text}')"));
            }
            return Self::specialists(spec, specialists);
        }
        // The calibration must exist and belong to the classifier it guards.
        let sha = spec.classifiers[0].sha256.clone();
        let calibration = || -> Result<&SqueezeConfig, String> {
            let c = squeeze.ok_or_else(|| format!("the feature-squeezing defenses are not calibrated for {} (lab defend {})", dataset.name(), dataset.name()))?;
            c.check_model(&sha)?;
            Ok(c)
        };
        let mut seen: Vec<&str> = Vec::new();
        for part in &parts {
            if seen.contains(part) {
                return Err(format!("'{part}' appears twice in '{text}'"));
            }
            seen.push(part);
            match *part {
                "bit-depth" => spec.preprocess.push(calibration()?.bit_depth),
                "median" => spec.preprocess.push(calibration()?.median),
                "detector" => {
                    let c = calibration()?;
                    spec.detectors.push(DetectorSpec::FeatureSqueezing {
                        squeezers: c.squeezers.clone(),
                        threshold: c.threshold,
                        model_sha256: c.model_sha256.clone(),
                        false_positive_rate: c.false_positive_rate,
                        calibration_images: c.calibration_images,
                    })
                }
                "gong" | "metzen" | "feinman" => {
                    let kind = DetectorKind::parse(part)?;
                    let m = learned
                        .iter()
                        .find(|m| m.kind == kind && m.dataset == dataset)
                        .ok_or_else(|| format!("the {part} detector of {} is not loaded (lab train detector {part}; the page loads it when this defense is chosen)", dataset.name()))?;
                    if m.classifier_sha256 != sha {
                        return Err(format!("the {part} detector was trained on other weights of the classifier (weights {}, loaded {}); retrain it: lab train detector {part}", short(&m.classifier_sha256), short(&sha)));
                    }
                    spec.detectors.push(DetectorSpec::learned(kind, LearnedDetectorSpec::from_manifest(m)));
                }
                "none" => return Err(format!("'none' cannot be combined with other parts ('{text}')")),
                other => return Err(format!("unknown defense '{other}' (expected parts {} joined by '+', e.g. bit-depth+median+detector)", PARTS.join(", "))),
            }
        }
        spec.name = parts.join("+");
        Ok(spec)
    }

    /// Specialists+1 on the generalist of `bare`, from the ensemble's manifest.
    fn specialists(mut spec: SystemSpec, ensemble: Option<&EnsembleManifest>) -> Result<Self, String> {
        let name = spec.dataset.name();
        let e = ensemble.ok_or_else(|| format!("the {name} specialists are not loaded (lab train specialists; the page loads them when this defense is chosen)"))?;
        if e.generalist_sha256 != spec.classifiers[0].sha256 {
            return Err(format!("the {name} specialists were trained from other weights of the generalist; retrain them (lab train specialists)"));
        }
        let d = e.detector.as_ref().ok_or_else(|| format!("the {name} specialists' detector is not calibrated (lab train specialists)"))?;
        let stem = e.weights.rsplit_once('.').map_or(e.weights.as_str(), |(s, _)| s);
        spec.classifiers.push(ClassifierRef { name: stem.to_string(), sha256: e.sha256.clone() });
        spec.vote = VoteRule::Specialists { sets: e.member_sets(spec.dataset.class_names().len()) };
        spec.detectors.push(DetectorSpec::VoteConfidence {
            min_confidence: d.min_confidence,
            ensemble_sha256: e.sha256.clone(),
            false_positive_rate: d.false_positive_rate,
            calibration_images: d.calibration_images,
        });
        spec.name = "specialists".into();
        Ok(spec)
    }

    pub fn is_bare(&self) -> bool {
        self.preprocess.is_empty() && self.detectors.is_empty() && self.classifiers.len() == 1
    }

    /// Builds the system on the classifiers of `models`, checking that each is the one the
    /// description names (same sha256) and that every detector was calibrated on it.
    pub fn build<'a>(&self, models: &'a ModelSet) -> Result<DefendedSystem<'a>, String> {
        if let VoteRule::Specialists { sets } = &self.vote {
            return self.build_specialists(models, sets);
        }
        let [classifier] = &self.classifiers[..] else {
            return Err(format!("the system '{}' names {} classifiers; this rule takes one", self.name, self.classifiers.len()));
        };
        let loaded = models.get(&classifier.name)?;
        if loaded.manifest.sha256 != classifier.sha256 {
            return Err(format!(
                "the system '{}' was described for other weights of '{}' (sha256 {}, loaded {})",
                self.name, classifier.name, short(&classifier.sha256), short(&loaded.manifest.sha256)
            ));
        }
        let mut detectors: Vec<Box<dyn Detector + 'a>> = Vec::new();
        for d in &self.detectors {
            match d {
                DetectorSpec::FeatureSqueezing { squeezers, threshold, model_sha256, .. } => {
                    if *model_sha256 != classifier.sha256 {
                        return Err(format!(
                            "the feature-squeezing threshold was calibrated on another model (weights {}, loaded {}); recalibrate it: lab defend {}",
                            short(model_sha256), short(&classifier.sha256), self.dataset.name()
                        ));
                    }
                    detectors.push(Box::new(SqueezeDetector { squeezers: squeezers.clone(), threshold: *threshold, grad_model: &loaded.grad_model, model: &loaded.model }));
                }
                DetectorSpec::VoteConfidence { .. } => return Err(format!("the system '{}' has a vote-confidence detector but no Specialists+1 vote", self.name)),
                DetectorSpec::Gong(s) | DetectorSpec::Metzen(s) | DetectorSpec::Feinman(s) => detectors.push(learned_detector(d, s, loaded, models)?),
            }
        }
        Ok(DefendedSystem { spec: self.clone(), device: models.device().clone(), grad_model: &loaded.grad_model, model: &loaded.model, detectors, vote: None })
    }

    /// Specialists+1: the generalist and the ensemble it names, each the weights described, the
    /// sets those of the ensemble, the detector calibrated on it.
    fn build_specialists<'a>(&self, models: &'a ModelSet, sets: &[Vec<usize>]) -> Result<DefendedSystem<'a>, String> {
        let [generalist, ensemble] = &self.classifiers[..] else {
            return Err(format!("the system '{}' votes with Specialists+1 and must name the generalist and the ensemble", self.name));
        };
        let g = models.get(&generalist.name)?;
        let e = models.ensemble(&ensemble.name)?;
        for (wanted, loaded) in [(generalist, &g.manifest.sha256), (ensemble, &e.manifest.sha256)] {
            if *loaded != wanted.sha256 {
                return Err(format!("the system '{}' was described for other weights of '{}' (sha256 {}, loaded {})", self.name, wanted.name, short(&wanted.sha256), short(loaded)));
            }
        }
        if e.manifest.generalist_sha256 != generalist.sha256 {
            return Err(format!("the ensemble '{}' was built on other weights of '{}'", ensemble.name, generalist.name));
        }
        if sets != e.manifest.member_sets(g.manifest.classes.len()) {
            return Err(format!("the system '{}' names other class sets than the ensemble '{}' has", self.name, ensemble.name));
        }
        if !self.preprocess.is_empty() {
            return Err(format!("the system '{}': Specialists+1 takes no preprocessing", self.name));
        }
        let [DetectorSpec::VoteConfidence { min_confidence, ensemble_sha256, .. }] = &self.detectors[..] else {
            return Err(format!("the system '{}': Specialists+1 has exactly its vote-confidence detector", self.name));
        };
        if *ensemble_sha256 != ensemble.sha256 {
            return Err(format!("the vote-confidence threshold was calibrated on other specialists (weights {}, loaded {}); recalibrate it: lab train specialists", short(ensemble_sha256), short(&ensemble.sha256)));
        }
        let detector = || VoteDetector { ensemble: &e.model, grad_ensemble: &e.grad_model, sets: sets.to_vec(), min_confidence: *min_confidence };
        Ok(DefendedSystem {
            spec: self.clone(),
            device: models.device().clone(),
            grad_model: &g.grad_model,
            model: &g.model,
            detectors: vec![Box::new(detector())],
            vote: Some(detector()),
        })
    }
}

fn short(sha: &str) -> &str {
    if sha.is_empty() { "unrecorded" } else { &sha[..sha.len().min(12)] }
}

/// A case-study-3 detector on `classifier`, from the loaded file the description names (same
/// sha256, trained on the same classifier weights).
fn learned_detector<'a>(d: &DetectorSpec, s: &LearnedDetectorSpec, classifier: &'a LoadedClassifier, models: &'a ModelSet) -> Result<Box<dyn Detector + 'a>, String> {
    let (kind, _) = d.as_learned().expect("a learned detector");
    if s.model_sha256 != classifier.manifest.sha256 {
        return Err(format!("the {} detector was trained on other weights of the classifier (weights {}, loaded {}); retrain it: lab train detector {}", kind.name(), short(&s.model_sha256), short(&classifier.manifest.sha256), kind.name()));
    }
    let loaded = models.detector(&s.name)?;
    if loaded.manifest.sha256 != s.sha256 || loaded.manifest.kind != kind {
        return Err(format!("the system names other {} detector weights (sha256 {}, loaded {})", kind.name(), short(&s.sha256), short(&loaded.manifest.sha256)));
    }
    let (threshold, margin) = (s.threshold, s.margin);
    let (model, grad_classifier) = (&classifier.model, &classifier.grad_model);
    Ok(match (&loaded.model, &loaded.grad_model) {
        (DetectorWeights::Gong(m), DetectorWeights::Gong(g)) => Box::new(GongDetector { model: m, grad_model: g, threshold, margin }),
        (DetectorWeights::Metzen(m), DetectorWeights::Metzen(g)) => {
            let layer = loaded.manifest.metzen_layer.ok_or("the Metzen detector's manifest names no layer")?;
            Box::new(MetzenDetector { net: m, grad_net: g, layer, classifier: model, grad_classifier, threshold, margin })
        }
        (DetectorWeights::Feinman(m), DetectorWeights::Feinman(g)) => {
            let info = loaded.manifest.kde.clone().ok_or("the Feinman detector's manifest has no sample description")?;
            Box::new(FeinmanDetector { sample: m, grad_sample: g, info, classifier: model, grad_classifier, threshold, margin })
        }
        _ => return Err(format!("the loaded '{}' is not a {} detector", s.name, kind.name())),
    })
}

/// A system built from its description, ready to be attacked and to judge.
pub struct DefendedSystem<'a> {
    pub spec: SystemSpec,
    device: Device,
    grad_model: &'a Classifier,
    model: &'a Classifier,
    detectors: Vec<Box<dyn Detector + 'a>>,
    /// Specialists+1: the vote decides (and the same detector is among `detectors`).
    vote: Option<VoteDetector<'a>>,
}

/// One detector's reading of one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectorReading {
    pub name: String,
    pub score: f32,
    pub threshold: f32,
    pub flagged: bool,
    /// How to show the score ([`Detector::shown_as`]).
    pub shown_as: &'static str,
}

/// The system's verdict on one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Judgement {
    pub predicted: usize,
    /// Softmax of the system's logits (after preprocessing).
    pub probs: Vec<f32>,
    /// Whether any detector flags the image.
    pub flagged: bool,
    pub detectors: Vec<DetectorReading>,
}

impl DefendedSystem<'_> {
    fn preprocess(&self, x: Tensor<4>, for_gradient: bool) -> Tensor<4> {
        self.spec.preprocess.iter().fold(x, |x, s| if for_gradient { s.apply_for_gradient(x) } else { s.apply(x) })
    }

    /// The plain device its verdicts run on.
    pub fn device(&self) -> Device {
        self.device.clone()
    }

    pub fn detectors(&self) -> &[Box<dyn Detector + '_>] {
        &self.detectors
    }

    /// The Specialists+1 vote, when the system is one.
    pub fn vote(&self) -> Option<&VoteDetector<'_>> {
        self.vote.as_ref()
    }

    /// The stacked ensemble of a Specialists+1 system (generalist first).
    pub fn ensemble(&self) -> Option<&Ensemble> {
        self.vote.as_ref().map(|v| v.ensemble)
    }

    /// The verdict on each image of a batch, read back in one transfer.
    pub async fn judge(&self, x: Tensor<4>) -> Result<Vec<Judgement>, String> {
        let n = x.dims()[0];
        let probs = softmax(self.system_logits(x.clone()), 1);
        let classes = probs.dims()[1];
        let mut parts = vec![probs.reshape([-1])];
        for d in &self.detectors {
            parts.push(d.score(x.clone()));
        }
        let all = read_f32(Tensor::cat(parts, 0)).await?;
        let (probs, scores) = all.split_at(n * classes);
        let predicted = argmax_rows(probs, classes);
        Ok((0..n)
            .map(|i| {
                let detectors: Vec<DetectorReading> = self
                    .detectors
                    .iter()
                    .enumerate()
                    .map(|(k, d)| {
                        let score = scores[k * n + i];
                        DetectorReading { name: d.name(), score, threshold: d.threshold(), flagged: score > d.threshold(), shown_as: d.shown_as() }
                    })
                    .collect();
                Judgement {
                    predicted: predicted[i],
                    probs: probs[i * classes..(i + 1) * classes].to_vec(),
                    flagged: detectors.iter().any(|d| d.flagged),
                    detectors,
                }
            })
            .collect())
    }
}

impl AttackTarget for DefendedSystem<'_> {
    /// Through the preprocessing chain (the rounding by its straight-through substitute).
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.grad_model.forward(self.preprocess(x, true))
    }

    /// He et al.: the classifier's term on what it sees, plus each detector's adaptive terms on
    /// the input (with the classifier's logits handed over when they are of the input itself).
    /// Specialists+1 (He et al.): the terms of every classifier that must vote for the class of
    /// interest, with the confidence hinge (see [`VoteDetector::attack_loss`]).
    fn attack_loss(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        if let Some(v) = &self.vote {
            return v.attack_loss(v.grad_ensemble.forward(x), term);
        }
        // Without preprocessing the classifier sees the input itself: one forward gives its
        // logits and the activations the detectors read (issue 14: one forward per step).
        let acts = self.spec.preprocess.is_empty().then(|| self.grad_model.activations(x.clone()));
        let logits = match &acts {
            Some(a) => a.logits.clone(),
            None => self.logits(x.clone()),
        };
        let mut loss = term(logits);
        for d in &self.detectors {
            loss = loss + d.adaptive_loss_with(x.clone(), acts.as_ref(), term);
        }
        loss
    }

    /// A system without preprocessing or detectors is its classifier: its logits are the verdict.
    fn attack_loss_and_verdict(&self, x: Tensor<4>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> (Tensor<1>, Option<Tensor<2>>) {
        if self.spec.preprocess.is_empty() && self.detectors.is_empty() && self.vote.is_none() {
            let logits = self.logits(x);
            (term(logits.clone()), Some(logits))
        } else {
            (self.attack_loss(x, term), None)
        }
    }

    /// Specialists+1: the log vote shares, whose argmax is the vote's winner.
    fn system_logits(&self, x: Tensor<4>) -> Tensor<2> {
        match &self.vote {
            Some(v) => v.vote(x).logits,
            None => self.model.forward(self.preprocess(x, false)),
        }
    }

    fn system_flags(&self, x: Tensor<4>) -> Option<Tensor<1, Bool>> {
        // The classifier's activations on the input once for every detector that reads them.
        let acts = self.detectors.iter().any(|d| d.reads_activations()).then(|| self.model.activations(x.clone()));
        self.detectors.iter().map(|d| d.score_with(x.clone(), acts.as_ref()).greater_elem(d.threshold())).reduce(|a, b| a.bool_or(b))
    }

    fn detector_scores(&self, x: Tensor<4>) -> Vec<Tensor<1>> {
        self.detectors.iter().map(|d| d.score(x.clone())).collect()
    }
}

/// A system the page can offer: its spelling, a label, and whether it can be built now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preset {
    pub name: String,
    pub label: String,
    pub parts: Vec<String>,
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Not loaded yet: the manifest (in the models folder) of the weights to download first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
}

/// The systems of case study 1 (each part alone, then compositions), with whether the data
/// set's calibration allows them.
pub fn presets(squeeze: Result<&SqueezeConfig, String>) -> Vec<Preset> {
    let label = |name: &str| -> String {
        let (bit, med) = match &squeeze {
            Ok(c) => (c.bit_depth.name(), c.median.name()),
            Err(_) => ("bit depth".to_string(), "median".to_string()),
        };
        name.split('+')
            .map(|p| match p {
                "none" => "no defense (the bare classifier)".to_string(),
                "bit-depth" => bit.clone(),
                "median" => med.clone(),
                "detector" => "feature-squeezing detector".to_string(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    ["none", "bit-depth", "median", "detector", "bit-depth+median", "bit-depth+detector", "median+detector", "bit-depth+median+detector"]
        .iter()
        .map(|name| {
            let needs = *name != "none";
            let reason = match (&squeeze, needs) {
                (Err(e), true) => Some(e.clone()),
                _ => None,
            };
            Preset {
                name: name.to_string(),
                label: label(name),
                parts: if needs { name.split('+').map(String::from).collect() } else { vec![] },
                available: reason.is_none(),
                reason,
                download: None,
            }
        })
        .collect()
}
