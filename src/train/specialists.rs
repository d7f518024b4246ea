//! Training the specialists of Specialists+1 (Abbasi & Gagné 2017) affordably on 2 CPU cores:
//! the confusion matrix of FGSM examples made on the generalist over the training images gives
//! the class sets ([`crate::defenses::specialists::specialist_sets`]); each specialist starts
//! from the generalist's weights with the logits outside its set pinned
//! ([`Classifier::pin_outside`]) and is fine-tuned on the training images of its own classes
//! only. The state (confusion matrix, sets, each finished specialist's record) is one JSON file
//! and each finished specialist one weights file, both under `models/checkpoints/`: a resumed
//! run skips what is done (a specialist interrupted mid-epoch starts over; one epoch each).

use super::{batch_pixels, cosine_lr, cross_entropy};
use crate::attacks::gradient::{fgsm, FgsmParams};
use crate::attacks::{Goal, ModelTarget, Silent};
use crate::data::{Dataset, Splits};
use crate::defenses::specialists::{confusion_matrix, specialist_sets};
use crate::inference;
use crate::models::ensemble::{encode_ensemble, ConfusionRecord, EnsembleManifest, SpecialistRecord};
use crate::models::manifest::{decode_weights, encode_weights, sha256_hex};
use crate::models::{Classifier, ClassifierConfig, DatasetKind, Ensemble, ModelManifest};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpecialistOptions {
    /// FGSM's L-infinity step for the confusion matrix (pixels in [0, 1]).
    pub fgsm_epsilon: f32,
    /// Share of a class's confusions its set covers (Abbasi & Gagné: 80%).
    pub coverage: f64,
    /// Fine-tuning epochs per specialist (over its own classes' training images).
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's peak learning rate, decayed to 0 over each specialist's steps (cosine).
    pub learning_rate: f64,
    pub seed: u64,
    /// At most this many of its classes' training images per epoch (a seeded random subset,
    /// drawn anew each epoch); all of them when absent.
    #[serde(default)]
    pub max_images: Option<usize>,
}

impl Default for SpecialistOptions {
    fn default() -> Self {
        SpecialistOptions { fgsm_epsilon: 0.2, coverage: 0.8, epochs: 1, batch_size: 128, learning_rate: 2e-4, seed: 1, max_images: None }
    }
}

impl SpecialistOptions {
    /// Whether `other` gives the same confusion matrix and sets (what a resumed run keeps).
    fn same_sets(&self, other: &SpecialistOptions) -> bool {
        self.fgsm_epsilon == other.fgsm_epsilon && self.coverage == other.coverage
    }

    fn describe_training(&self) -> String {
        let images = match self.max_images {
            Some(n) => format!("at most {n} (a seeded random subset per epoch) of the training images of its classes"),
            None => "the training images of its classes only".into(),
        };
        format!(
            "the generalist's weights with the logits outside its set pinned (fc3 weights 0, bias -1e4), fine-tuned {} epoch(s) on {images}; Adam, batch {}, learning rate {} with cosine decay to 0, no augmentation, seed {}",
            self.epochs, self.batch_size, self.learning_rate, self.seed
        )
    }
}

/// What `models/checkpoints/specialists-state.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpecialistState {
    pub dataset: DatasetKind,
    pub generalist_sha256: String,
    pub options: SpecialistOptions,
    pub confusion: ConfusionRecord,
    /// Seconds the confusion matrix took.
    pub confusion_seconds: f64,
    pub sets: Vec<Vec<usize>>,
    /// One per set once trained: the record and the sha256 of its weights file.
    pub done: Vec<Option<(SpecialistRecord, String)>>,
}

/// Where each piece of the state lives.
pub struct SpecialistPaths {
    pub state: PathBuf,
    /// Directory of the finished specialists' weights (`NN.safetensors`).
    pub weights: PathBuf,
}

impl SpecialistPaths {
    pub fn under(checkpoints: &Path, dataset: DatasetKind) -> Self {
        SpecialistPaths {
            state: checkpoints.join(format!("{}-specialists-state.json", dataset.name())),
            weights: checkpoints.join(format!("{}-specialists", dataset.name())),
        }
    }
    fn member(&self, i: usize) -> PathBuf {
        self.weights.join(format!("{i:02}.safetensors"))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn save_state(paths: &SpecialistPaths, state: &SpecialistState) -> Result<(), String> {
    write_atomic(&paths.state, (serde_json::to_string_pretty(state).unwrap() + "\n").as_bytes())
}

/// The images of `data` whose label is in `set`.
pub fn of_classes(data: &Dataset, set: &[usize]) -> Dataset {
    let idx: Vec<usize> = (0..data.len()).filter(|&i| set.contains(&(data.labels[i] as usize))).collect();
    data.select(&idx)
}

/// The confusion matrix of untargeted FGSM examples made on `model` from `data`
/// (`matrix[label][class given to the example]`), in batches.
pub fn fgsm_confusion(model: &Classifier, grad_model: &Classifier, data: &Dataset, epsilon: f32, classes: usize, device: &Device) -> Result<Vec<Vec<u64>>, String> {
    let target = ModelTarget { grad_model, model };
    let mut predicted = Vec::with_capacity(data.len());
    for s in (0..data.len()).step_by(500) {
        let e = (s + 500).min(data.len());
        let goal = Goal::untargeted(data.labels[s..e].iter().map(|&l| l as usize).collect(), classes);
        let out = pollster::block_on(fgsm(&target, inference::dataset_tensor(data, s, e, device), &goal, &FgsmParams { epsilon }, &mut Silent))?;
        predicted.extend(out.predicted);
    }
    let labels: Vec<usize> = data.labels.iter().map(|&l| l as usize).collect();
    Ok(confusion_matrix(&labels, &predicted, classes))
}

/// Fine-tunes one specialist from the generalist's weights on `train` (its classes' images).
fn fine_tune(generalist: &[u8], config: &ClassifierConfig, set: &[usize], train: &Dataset, options: &SpecialistOptions, index: usize, device: &Device) -> Result<Classifier, String> {
    let train_device = device.clone().autodiff();
    train_device.seed(options.seed.wrapping_mul(7919).wrapping_add(index as u64));
    // Pinned on the plain device and decoded again on the training one (a parameter computed
    // on the autodiff device would not be a leaf the optimizer can track).
    let pinned = decode_weights(config, generalist, device).map_err(|e| e.to_string())?.pin_outside(set);
    let pinned = encode_weights(&pinned).map_err(|e| e.to_string())?;
    let mut model = decode_weights(config, &pinned, &train_device).map_err(|e| e.to_string())?.train();
    let mut optim = AdamConfig::new().init();
    let per_epoch = options.max_images.unwrap_or(usize::MAX).min(train.len());
    let batches = per_epoch.div_ceil(options.batch_size);
    let total = batches * options.epochs;
    let start = Instant::now();
    for epoch in 0..options.epochs {
        let mut rng = StdRng::seed_from_u64(options.seed.wrapping_mul(1000).wrapping_add((index * 100 + epoch) as u64));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        order.truncate(per_epoch);
        for (b, indices) in order.chunks(options.batch_size).enumerate() {
            let pixels = batch_pixels(train, indices, false, &mut rng);
            let labels: Vec<u8> = indices.iter().map(|&i| train.labels[i]).collect();
            let loss = cross_entropy(model.forward(inference::to_tensor(&pixels, train.shape, &train_device)), &labels);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cosine_lr(options.learning_rate, epoch * batches + b, total), model, grads);
            if b % 50 == 0 {
                eprint!("\rspecialist {index}: epoch {}/{} batch {}/{batches} {:.0} img/s   ", epoch + 1, options.epochs, b + 1, ((epoch * batches + b + 1) * options.batch_size) as f64 / start.elapsed().as_secs_f64());
            }
        }
    }
    eprintln!();
    // The pinned columns get exactly zero gradient (their probability is exactly 0), so Adam
    // leaves them; pinning again only makes that a guarantee of the published weights.
    Ok(model.valid().pin_outside(set))
}

/// Computes (or resumes) the confusion matrix and the sets, then trains every specialist not
/// yet done, saving the state after each. Returns the finished state.
pub fn train_specialists(
    generalist: (&ModelManifest, &[u8]),
    splits: &Splits,
    options: &SpecialistOptions,
    paths: &SpecialistPaths,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<SpecialistState, String> {
    let (manifest, bytes) = generalist;
    let dataset = manifest.dataset;
    let config = ClassifierConfig::for_dataset(dataset);
    let classes = manifest.classes.len();
    let mut state = match std::fs::read_to_string(&paths.state) {
        Ok(text) => {
            let state: SpecialistState = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", paths.state.display()))?;
            let mut state = state;
            if state.generalist_sha256 != manifest.sha256 || !state.options.same_sets(options) || state.dataset != dataset {
                return Err(format!(
                    "{}: made from other weights or with other settings ({:?}); remove it and {} to start over, or pass the same options",
                    paths.state.display(),
                    state.options,
                    paths.weights.display()
                ));
            }
            log(&format!("resuming: {} of {} specialists done", state.done.iter().flatten().count(), state.sets.len()));
            // The sets stay; the training settings may change for the specialists still to
            // train (each record keeps its own epochs and images).
            if state.options != *options {
                log(&format!("training settings changed from {:?} to {options:?} for the specialists not yet trained", state.options));
                state.options = options.clone();
                save_state(paths, &state)?;
            }
            state
        }
        Err(_) => {
            let start = Instant::now();
            let model = decode_weights(&config, bytes, device).map_err(|e| e.to_string())?;
            let grad_model = decode_weights(&config, bytes, &device.clone().autodiff()).map_err(|e| e.to_string())?.freeze();
            log(&format!("FGSM (epsilon {}) on the generalist over {} training images", options.fgsm_epsilon, splits.train.len()));
            let matrix = fgsm_confusion(&model, &grad_model, &splits.train, options.fgsm_epsilon, classes, device)?;
            let sets = specialist_sets(&matrix, options.coverage);
            let confusion = ConfusionRecord { matrix, fgsm_epsilon: options.fgsm_epsilon, images: splits.train.len(), coverage: options.coverage };
            let state = SpecialistState {
                dataset,
                generalist_sha256: manifest.sha256.clone(),
                options: options.clone(),
                confusion,
                confusion_seconds: start.elapsed().as_secs_f64(),
                done: vec![None; sets.len()],
                sets,
            };
            for (i, row) in state.confusion.matrix.iter().enumerate() {
                log(&format!("confusions of {i}: {row:?}"));
            }
            log(&format!("{} specialist sets ({:.0} s): {:?}", state.sets.len(), state.confusion_seconds, state.sets));
            save_state(paths, &state)?;
            state
        }
    };
    for i in 0..state.sets.len() {
        let path = paths.member(i);
        if let Some((_, sha)) = &state.done[i] {
            if std::fs::read(&path).map(|b| sha256_hex(&b) == *sha).unwrap_or(false) {
                continue;
            }
            log(&format!("specialist {i}: {} is missing or changed; training it again", path.display()));
        }
        let set = state.sets[i].clone();
        let train = of_classes(&splits.train, &set);
        let test = of_classes(&splits.test, &set);
        let start = Instant::now();
        let model = fine_tune(bytes, &config, &set, &train, options, i, device)?;
        let seconds = start.elapsed().as_secs_f64();
        let accuracy = pollster::block_on(inference::accuracy(&model, &test, 500, device))?;
        let weights = encode_weights(&model).map_err(|e| e.to_string())?;
        write_atomic(&path, &weights)?;
        let used = options.max_images.unwrap_or(usize::MAX).min(train.len());
        let record = SpecialistRecord { classes: set.clone(), test_accuracy: accuracy, test_images: test.len(), training_images: used, epochs: options.epochs, seconds };
        log(&format!(
            "specialist {i} {set:?}: {used} of its {} training images per epoch, {:.0} s; accuracy {accuracy:.4} on the {} test images of its classes",
            train.len(),
            seconds,
            test.len()
        ));
        state.done[i] = Some((record, sha256_hex(&weights)));
        save_state(paths, &state)?;
    }
    Ok(state)
}

/// Stacks the finished specialists into `<dir>/<dataset>-specialists.safetensors` and writes
/// its manifest (without the detector's calibration, which needs the ensemble built).
pub fn publish_specialists(dir: &Path, generalist: &ModelManifest, state: &SpecialistState, paths: &SpecialistPaths, device: &Device) -> Result<EnsembleManifest, String> {
    let config = ClassifierConfig::for_dataset(state.dataset);
    let mut members = Vec::with_capacity(state.sets.len());
    let mut records = Vec::with_capacity(state.sets.len());
    for (i, done) in state.done.iter().enumerate() {
        let (record, sha) = done.as_ref().ok_or_else(|| format!("specialist {i} is not trained yet"))?;
        let bytes = std::fs::read(paths.member(i)).map_err(|e| format!("{}: {e}", paths.member(i).display()))?;
        if sha256_hex(&bytes) != *sha {
            return Err(format!("{}: changed since it was trained", paths.member(i).display()));
        }
        members.push(decode_weights(&config, &bytes, device).map_err(|e| e.to_string())?);
        records.push(record.clone());
    }
    let refs: Vec<&Classifier> = members.iter().collect();
    let bytes = encode_ensemble(&Ensemble::stack(&refs)).map_err(|e| e.to_string())?;
    let weights = format!("{}-specialists.safetensors", state.dataset.name());
    let manifest = EnsembleManifest {
        dataset: state.dataset,
        generalist: crate::models::ModelSet::name_of(generalist).to_string(),
        generalist_sha256: generalist.sha256.clone(),
        weights: weights.clone(),
        sha256: sha256_hex(&bytes),
        bytes: bytes.len(),
        seconds: state.confusion_seconds + records.iter().map(|r| r.seconds).sum::<f64>(),
        specialists: records,
        confusion: state.confusion.clone(),
        training: format!("each specialist: {} (per specialist: see specialists[].training_images, epochs)", state.options.describe_training()),
        detector: None,
        vote_test_accuracy: None,
        timing: None,
    };
    write_manifest(dir, &manifest)?;
    write_atomic(&dir.join(&weights), &bytes)?;
    Ok(manifest)
}

/// Writes `<dir>/<dataset>-specialists.json`.
pub fn write_manifest(dir: &Path, manifest: &EnsembleManifest) -> Result<(), String> {
    let path = dir.join(format!("{}-specialists.json", manifest.dataset.name()));
    write_atomic(&path, (serde_json::to_string_pretty(manifest).unwrap() + "\n").as_bytes())
}
