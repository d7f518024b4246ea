//! Training the classifiers natively: Adam, cross-entropy, cosine learning-rate decay, optional
//! light augmentation (CIFAR-10: random crops with 4 pixels of zero padding, horizontal flips),
//! a progress bar, and a checkpoint after every epoch (one file, overwritten) so an interrupted
//! run resumes where it stopped.

use crate::data::{Dataset, Splits};
use crate::inference;
use crate::models::manifest::{encode_weights, sha256_hex, ModelManifest, TrainingRecord};
use crate::models::{Classifier, ClassifierConfig, DatasetKind};
use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod checkpoint;
pub mod detector;
pub mod detector_publish;
pub mod specialists;
pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint, CheckpointMeta};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub augment: bool,
    /// On resume: start a new cosine phase at the checkpoint (a warm restart), from
    /// `learning_rate` down to 0 at `epochs`. Not stored: resuming that phase later leaves it off.
    #[serde(skip)]
    pub new_phase: bool,
    /// Weight averaging (Izmailov et al. 2018, "Averaging weights leads to wider optima and better
    /// generalization"): from the end of this epoch on, keep the mean of the weights after each
    /// later epoch and publish that mean. May be given when a run starts or on resume (not for
    /// epochs already done: their weights are gone); once on, the checkpoint keeps it. A later
    /// start given on resume restarts the mean there.
    #[serde(skip)]
    pub average_from: Option<usize>,
}

impl TrainOptions {
    /// What reaches the targets on a 2-core CPU in reasonable time.
    pub fn defaults(dataset: DatasetKind) -> Self {
        match dataset {
            DatasetKind::Mnist => TrainOptions { epochs: 12, batch_size: 128, learning_rate: 1e-3, seed: 1, augment: false, new_phase: false, average_from: None },
            DatasetKind::Cifar10 => TrainOptions { epochs: 30, batch_size: 128, learning_rate: 1e-3, seed: 1, augment: true, new_phase: false, average_from: None },
        }
    }
}

/// Cross-entropy of logits against integer labels, averaged over the batch.
pub fn cross_entropy(logits: Tensor<2>, labels: &[u8]) -> Tensor<1> {
    let classes = logits.dims()[1];
    let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
    inference::cross_entropy(logits.clone(), inference::onehot(&labels, classes, &logits.device())).mean()
}

/// A training batch as floats, augmented when asked: a random shift of up to 4 pixels (a crop
/// of the zero-padded image) and a horizontal flip with probability 1/2.
pub fn batch_pixels(data: &Dataset, indices: &[usize], augment: bool, rng: &mut StdRng) -> Vec<f32> {
    let s = data.shape;
    let plane = s.height * s.width;
    let mut out = vec![0f32; indices.len() * s.len()];
    for (b, &i) in indices.iter().enumerate() {
        let img = data.image(i);
        let dst = &mut out[b * s.len()..(b + 1) * s.len()];
        if !augment {
            for (d, &p) in dst.iter_mut().zip(img) {
                *d = p as f32 / 255.0;
            }
            continue;
        }
        let (dx, dy): (i64, i64) = (rng.random_range(-4..=4), rng.random_range(-4..=4));
        let flip = rng.random_bool(0.5);
        for c in 0..s.channels {
            for y in 0..s.height {
                let sy = y as i64 + dy;
                if sy < 0 || sy >= s.height as i64 {
                    continue;
                }
                for x in 0..s.width {
                    let xx = if flip { s.width - 1 - x } else { x };
                    let sx = xx as i64 + dx;
                    if sx < 0 || sx >= s.width as i64 {
                        continue;
                    }
                    dst[c * plane + y * s.width + x] = img[c * plane + sy as usize * s.width + sx as usize] as f32 / 255.0;
                }
            }
        }
    }
    out
}

/// Moves every weight of `average` towards the same weight of `current` by `weight`:
/// `a + weight * (c - a)`. With `weight = 1/n` for the n-th snapshot, `average` is the plain mean
/// of the n snapshots (the running mean of stochastic weight averaging). The nets have no batch
/// normalisation, so the mean needs no recomputed statistics.
pub fn blend(average: Classifier, current: &Classifier, weight: f64) -> Classifier {
    // Both modules are the same struct, so visiting and mapping meet the parameters in the
    // same order.
    struct Collect(Vec<TensorData>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data());
        }
    }
    struct Blend {
        current: std::vec::IntoIter<TensorData>,
        weight: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let data = self.current.next().expect("the same architecture has the same parameters");
            let weight = self.weight;
            param.map(|a| {
                let c = Tensor::<D>::from_data(data, &a.device());
                a.clone() + (c - a).mul_scalar(weight)
            })
        }
    }
    let mut collect = Collect(Vec::new());
    current.visit(&mut collect);
    average.map(&mut Blend { current: collect.0.into_iter(), weight })
}

/// Cosine decay from `lr` to 0 over `total` steps.
pub fn cosine_lr(lr: f64, step: usize, total: usize) -> f64 {
    lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total.max(1) as f64).cos())
}

/// A one-line progress bar on stderr.
fn progress(epoch: usize, epochs: usize, done: usize, total: usize, loss: f64, rate: f64) {
    let width = 30;
    let filled = width * done / total.max(1);
    let eta = (total - done) as f64 / rate.max(1e-9);
    eprint!(
        "\repoch {}/{} [{}{}] {}/{} loss {:.4} {:.0} img/s eta {:.0}s   ",
        epoch,
        epochs,
        "#".repeat(filled),
        "-".repeat(width - filled),
        done,
        total,
        loss,
        rate,
        eta
    );
    let _ = std::io::stderr().flush();
}

pub struct TrainOutcome {
    /// The weights after the last epoch, or their mean when weight averaging was on.
    pub model: Classifier,
    pub meta: CheckpointMeta,
}

impl TrainOutcome {
    /// The measured test accuracy of `model`.
    pub fn test_accuracy(&self) -> f64 {
        let per_epoch = if self.meta.averaged_epochs().is_some() { &self.meta.average_accuracy_per_epoch } else { &self.meta.accuracy_per_epoch };
        *per_epoch.last().unwrap_or(&0.0)
    }
}

/// Whether weight averaging may start after epoch `from` of a run of `epochs` with `done` epochs done.
fn check_average_from(from: usize, done: usize, epochs: usize) -> Result<(), String> {
    if from < done {
        return Err(format!("--average-from {from}: {done} epochs are done and the weights after them are gone; pick {done} or later"));
    }
    if from >= epochs {
        return Err(format!("--average-from {from}: the run ends after epoch {epochs}"));
    }
    Ok(())
}

fn averaged_span(from: usize, epochs: usize) -> String {
    format!("the published weights will be the mean of the weights after epochs {}-{epochs}", from + 1)
}

fn averaging_on(from: usize, epochs: usize) -> String {
    format!("weight averaging on: {}", averaged_span(from, epochs))
}

/// Trains (or resumes) and returns the model in inference mode with its history.
/// `log` gets one line per epoch (the training log committed beside the checkpoint).
pub fn train(
    dataset: DatasetKind,
    splits: &Splits,
    options: &TrainOptions,
    checkpoint: &Path,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, String> {
    let config = ClassifierConfig::for_dataset(dataset);
    let train_device = device.clone().autodiff();
    let (mut meta, mut model, mut optim, mut average) = if checkpoint.exists() {
        let Checkpoint { mut meta, model, optim, mut average } = load_checkpoint(checkpoint, &config, &train_device, device)?;
        // The schedule's length may change on resume (the cosine then continues over the new
        // total from where it is), augmentation may be switched, and a new cosine phase may
        // begin (with its own peak learning rate); all are logged and kept in the manifest.
        // Every other setting must match, or the run would not be one run.
        let stored = TrainOptions { new_phase: false, average_from: None, ..options.clone() };
        let lr = if options.new_phase { options.learning_rate } else { meta.options.learning_rate };
        let others_match = TrainOptions { epochs: options.epochs, augment: options.augment, learning_rate: lr, ..meta.options.clone() } == stored;
        if others_match && options.epochs >= meta.epochs_done {
            let done = meta.epochs_done;
            let mut changes = Vec::new();
            if meta.options.epochs != options.epochs {
                changes.push(format!("schedule length changed from {} to {} epochs", meta.options.epochs, options.epochs));
            }
            if meta.options.augment != options.augment {
                changes.push(format!("augmentation turned {}", if options.augment { "on" } else { "off" }));
            }
            if options.new_phase && meta.phase_start != done && done < options.epochs {
                meta.phase_start = done;
                changes.push(format!("new cosine phase: learning rate {} decaying to 0 by epoch {}", options.learning_rate, options.epochs));
            }
            if let Some(from) = options.average_from.filter(|&f| meta.average_from != Some(f)) {
                check_average_from(from, done, options.epochs)?;
            }
            match (options.average_from, meta.average_from) {
                (Some(from), None) => {
                    meta.average_from = Some(from);
                    changes.push(averaging_on(from, options.epochs));
                }
                (Some(from), Some(on)) if from != on => {
                    // A later start drops the snapshots taken so far (early ones, from a higher
                    // learning rate, can pull the mean below the latest weights).
                    let dropped = match (meta.averaged_epochs(), meta.average_accuracy_per_epoch.last()) {
                        (Some((first, last)), Some(acc)) => format!(" (the mean of epochs {first}-{last}, test accuracy {acc:.4}, is dropped)"),
                        _ => String::new(),
                    };
                    meta.average_from = Some(from);
                    meta.average_accuracy_per_epoch.clear();
                    average = None;
                    changes.push(format!("weight averaging restarted: {}{dropped}", averaged_span(from, options.epochs)));
                }
                _ => {}
            }
            for what in changes {
                log(&format!("after epoch {done}: {what}"));
                meta.changes.push(format!("after epoch {done}: {what}"));
            }
            meta.options = stored.clone();
        }
        if meta.dataset != dataset || meta.options != stored {
            return Err(format!(
                "{}: checkpoint was made with other settings ({:?}); remove it or pass the same options",
                checkpoint.display(),
                meta.options
            ));
        }
        log(&format!("resuming from {} after epoch {}", checkpoint.display(), meta.epochs_done));
        (meta, model.train(), optim, average)
    } else {
        train_device.seed(options.seed);
        if let Some(from) = options.average_from {
            check_average_from(from, 0, options.epochs)?;
        }
        let mut meta = CheckpointMeta {
            dataset,
            options: TrainOptions { new_phase: false, average_from: None, ..options.clone() },
            epochs_done: 0,
            seconds: 0.0,
            images_seen: 0,
            accuracy_per_epoch: Vec::new(),
            changes: Vec::new(),
            phase_start: 0,
            average_from: options.average_from,
            average_accuracy_per_epoch: Vec::new(),
        };
        if let Some(from) = options.average_from {
            meta.changes.push(format!("from the start: {}", averaging_on(from, options.epochs)));
        }
        (meta, config.init(&train_device), AdamConfig::new().init(), None)
    };
    let train = &splits.train;
    let batches = train.len().div_ceil(options.batch_size);
    // Steps of the current cosine phase (the whole run unless a new phase began).
    let phase_steps = batches * (options.epochs - meta.phase_start);
    while meta.epochs_done < options.epochs {
        let epoch = meta.epochs_done;
        // Seeded per epoch, so a resumed run shuffles as the uninterrupted one would have.
        let mut rng = StdRng::seed_from_u64(options.seed.wrapping_mul(1000).wrapping_add(epoch as u64));
        train_device.seed(options.seed.wrapping_mul(7919).wrapping_add(epoch as u64));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let start = Instant::now();
        let mut loss_sum = 0.0;
        for (b, indices) in order.chunks(options.batch_size).enumerate() {
            let pixels = batch_pixels(train, indices, options.augment, &mut rng);
            let labels: Vec<u8> = indices.iter().map(|&i| train.labels[i]).collect();
            let x = inference::to_tensor(&pixels, train.shape, &train_device);
            let loss = cross_entropy(model.forward(x), &labels);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let lr = cosine_lr(options.learning_rate, (epoch - meta.phase_start) * batches + b, phase_steps);
            model = optim.step(lr, model, grads);
            if b % 20 == 0 || b + 1 == batches {
                loss_sum = 0.9 * loss_sum + 0.1 * loss.clone().into_scalar::<f32>() as f64;
                let corrected = loss_sum / (1.0 - 0.9f64.powi((b / 20 + 1) as i32));
                let done = (b + 1) * options.batch_size;
                progress(epoch + 1, options.epochs, done.min(train.len()), train.len(), corrected, done as f64 / start.elapsed().as_secs_f64());
            }
        }
        eprintln!();
        let seconds = start.elapsed().as_secs_f64();
        let valid = model.valid();
        let accuracy = pollster::block_on(inference::accuracy(&valid, &splits.test, 500, device))?;
        meta.epochs_done += 1;
        meta.seconds += seconds;
        meta.images_seen += train.len();
        meta.accuracy_per_epoch.push(accuracy);
        let mut averaged = String::new();
        if let Some((first, last)) = meta.averaged_epochs() {
            let n = last - first + 1;
            // The first snapshot is the epoch's weights themselves: their accuracy is measured.
            let (mean, mean_accuracy) = match average.take() {
                Some(mean) => {
                    let mean = blend(mean, &valid, 1.0 / n as f64);
                    let mean_accuracy = pollster::block_on(inference::accuracy(&mean, &splits.test, 500, device))?;
                    (mean, mean_accuracy)
                }
                None => (valid, accuracy),
            };
            meta.average_accuracy_per_epoch.push(mean_accuracy);
            averaged = format!("; mean of the weights after epochs {first}-{last}: {mean_accuracy:.4}");
            average = Some(mean);
        }
        save_checkpoint(checkpoint, &meta, &model, &optim, average.as_ref())?;
        log(&format!(
            "epoch {}/{}: test accuracy {:.4} on {} images{}, {:.0} s, {:.0} training images/s; checkpoint {}",
            meta.epochs_done,
            options.epochs,
            accuracy,
            splits.test.len(),
            averaged,
            seconds,
            train.len() as f64 / seconds,
            checkpoint.display()
        ));
    }
    // With weight averaging on, the mean is what the run produced.
    let model = average.unwrap_or_else(|| model.valid());
    Ok(TrainOutcome { model, meta })
}

/// Writes `<dir>/<dataset>.safetensors` and its manifest; returns the manifest.
pub fn publish(dir: &Path, dataset: DatasetKind, outcome: &TrainOutcome, test_images: usize) -> Result<ModelManifest, String> {
    let config = ClassifierConfig::for_dataset(dataset);
    let bytes = encode_weights(&outcome.model).map_err(|e| e.to_string())?;
    let weights = format!("{}.safetensors", dataset.name());
    let meta = &outcome.meta;
    let manifest = ModelManifest {
        dataset,
        architecture: config.describe(),
        config: config.clone(),
        classes: dataset.class_names().iter().map(|s| s.to_string()).collect(),
        input: dataset.shape().dims(),
        weights: weights.clone(),
        sha256: sha256_hex(&bytes),
        bytes: bytes.len(),
        parameters: outcome.model.num_params(),
        test_accuracy: outcome.test_accuracy(),
        test_images,
        training: TrainingRecord {
            epochs: meta.epochs_done,
            batch_size: meta.options.batch_size,
            optimizer: "Adam (beta1 0.9, beta2 0.999, eps 1e-5)".into(),
            learning_rate: meta.options.learning_rate,
            schedule: match (meta.phase_start, meta.changes.iter().any(|c| c.contains("schedule length"))) {
                (0, false) => "cosine decay to 0 over all steps".into(),
                (0, true) => "cosine decay, its length changed during the run (see changes)".into(),
                (p, _) => format!("cosine decay to 0, restarted after epoch {p} (see changes)"),
            },
            augmentation: format!(
                "{}{}",
                if meta.options.augment { "random shift up to 4 px (zero padding) + horizontal flip" } else { "none" },
                if meta.changes.iter().any(|c| c.contains("augmentation")) { " at the end; switched during the run (see changes)" } else { "" }
            ),
            seed: meta.options.seed,
            seconds: meta.seconds,
            images_per_second: meta.images_seen as f64 / meta.seconds.max(1e-9),
            accuracy_per_epoch: meta.accuracy_per_epoch.clone(),
            changes: {
                let mut changes = meta.changes.clone();
                if let Some((first, last)) = meta.averaged_epochs() {
                    changes.push(format!(
                        "published: the mean of the weights after epochs {first}-{last} (test accuracy {:.4}; the weights after epoch {last} alone: {:.4}; the mean after each averaged epoch: {})",
                        outcome.test_accuracy(),
                        meta.accuracy_per_epoch.last().unwrap_or(&0.0),
                        meta.average_accuracy_per_epoch.iter().map(|a| format!("{a:.4}")).collect::<Vec<_>>().join(" ")
                    ));
                }
                changes
            },
        },
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let wpath: PathBuf = dir.join(&weights);
    std::fs::write(&wpath, &bytes).map_err(|e| format!("{}: {e}", wpath.display()))?;
    let mpath = dir.join(format!("{}.json", dataset.name()));
    std::fs::write(&mpath, manifest.to_json() + "\n").map_err(|e| format!("{}: {e}", mpath.display()))?;
    Ok(manifest)
}
