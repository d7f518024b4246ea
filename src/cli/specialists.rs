//! `lab train specialists`: the Specialists+1 ensemble of MNIST (case study 2). Confusion
//! matrix of FGSM examples on the generalist, one fine-tuned specialist per class set
//! (resumable: finished ones are skipped), the stacked weights and their manifest, then the
//! vote-confidence detector calibrated at 5% false positives on test images 1000+ (as
//! `lab defend` does) and the vote's accuracy on the whole test set.

use crate::commands::{device, read, Res};
use advlab::data::load_splits;
use advlab::defenses::specialists::{calibrate_vote, vote_dataset, VoteDetector};
use advlab::models::{DatasetKind, ModelManifest, ModelSet};
use advlab::train::specialists::{publish_specialists, train_specialists, write_manifest, SpecialistOptions, SpecialistPaths};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Args {
    pub data: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub seed: Option<u64>,
    pub models: PathBuf,
    pub limit: Option<usize>,
    /// Held-out benign test images (from image 1000 on) for the threshold.
    pub calibration: usize,
}

pub fn train(args: Args) -> Res {
    let kind = DatasetKind::Mnist;
    let defaults = SpecialistOptions::default();
    let options = SpecialistOptions {
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        learning_rate: args.learning_rate.unwrap_or(defaults.learning_rate),
        seed: args.seed.unwrap_or(defaults.seed),
        ..defaults
    };
    let models = &args.models;
    let mpath = models.join("mnist.json");
    let manifest = ModelManifest::parse(&std::fs::read_to_string(&mpath).map_err(|e| format!("{}: {e} (train it first: lab train mnist)", mpath.display()))?)
        .map_err(|e| format!("{}: {e}", mpath.display()))?;
    let bytes = read(&models.join(&manifest.weights))?;
    let dir = args.data.unwrap_or_else(|| PathBuf::from("../shared/data/mnist"));
    let mut splits = load_splits(kind, &dir).map_err(|e| e.to_string())?;
    if let Some(n) = args.limit {
        splits.train = splits.train.take(n);
    }
    let checkpoints = models.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).map_err(|e| format!("{}: {e}", checkpoints.display()))?;
    let log_path = checkpoints.join("specialists-train.log");
    let mut log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut log = |line: &str| {
        eprintln!("{line}");
        let _ = writeln!(log_file, "{line}");
    };
    log(&format!("lab train specialists {options:?}; {} training images", splits.train.len()));
    let device = device();
    let paths = SpecialistPaths::under(&checkpoints, kind);
    let state = train_specialists((&manifest, &bytes), &splits, &options, &paths, &device, &mut log)?;
    let mut ensemble = publish_specialists(models, &manifest, &state, &paths, &device)?;
    log(&format!("published {}/{} ({} specialists, {} bytes, sha256 {})", models.display(), ensemble.weights, ensemble.specialists.len(), ensemble.bytes, ensemble.sha256));
    calibrate(models, &mut ensemble, &manifest, &bytes, &splits.test, args.calibration, &device, &mut log)
}

/// Builds the ensemble as the systems will, calibrates the detector and measures the vote.
#[allow(clippy::too_many_arguments)]
fn calibrate(models: &Path, ensemble: &mut advlab::models::EnsembleManifest, manifest: &ModelManifest, bytes: &[u8], test: &advlab::data::Dataset, calibration: usize, device: &burn::prelude::Device, log: &mut dyn FnMut(&str)) -> Res {
    let mut set = ModelSet::new(device.clone());
    set.insert(manifest.clone(), bytes)?;
    let weights = read(&models.join(&ensemble.weights))?;
    let loaded = set.insert_ensemble(ensemble.clone(), &weights)?;
    let detector = VoteDetector { ensemble: &loaded.model, grad_ensemble: &loaded.grad_model, sets: ensemble.member_sets(manifest.classes.len()), min_confidence: 0.0 };
    let start = std::time::Instant::now();
    let held = test.slice(1000.min(test.len()), (1000 + calibration).min(test.len()));
    let threshold = pollster::block_on(calibrate_vote(&detector, &held, device))?;
    let (winners, _) = pollster::block_on(vote_dataset(&detector, test, device))?;
    let accuracy = winners.iter().zip(&test.labels).filter(|(w, l)| **w == **l as usize).count() as f64 / test.len().max(1) as f64;
    log(&format!(
        "vote: accuracy {accuracy:.4} on {} test images; detector: minimum confidence {:.5} (5% of {} held-out images below), {:.2}% of {} other held-out images flagged; {:.0} s",
        test.len(),
        threshold.min_confidence,
        threshold.calibration_images,
        100.0 * threshold.false_positive_rate,
        held.len() - threshold.calibration_images,
        start.elapsed().as_secs_f64()
    ));
    ensemble.detector = Some(threshold);
    ensemble.vote_test_accuracy = Some(accuracy);
    write_manifest(models, ensemble)
}
