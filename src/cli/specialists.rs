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

/// Loads the data set's Specialists+1 ensemble (`models/<dataset>-specialists.json`) when a
/// comma-separated list of systems names it.
pub fn load_if_named(engine: &mut advlab::engine::Engine, kind: DatasetKind, defenses: &str, models: &Path) -> Res {
    if defenses.split(',').any(|d| d.trim() == "specialists") {
        engine.models.load_ensemble_from_dir(models, &format!("{}-specialists", kind.name()))?;
    }
    Ok(())
}

pub struct Args {
    pub data: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub seed: Option<u64>,
    pub models: PathBuf,
    pub limit: Option<usize>,
    /// At most this many training images per specialist and epoch.
    pub max_images: Option<usize>,
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
        max_images: args.max_images,
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
    set.insert_ensemble(ensemble.clone(), &weights)?;
    let loaded = set.specialists(ensemble.dataset).ok_or("the ensemble was just loaded")?;
    let generalist = set.get(ModelSet::name_of(manifest))?;
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
    let timing = time_forward(generalist, loaded, &test.slice(0, 100.min(test.len())), device)?;
    log(&format!("{timing:?}"));
    ensemble.timing = Some(timing);
    write_manifest(models, ensemble)
}

/// Median milliseconds of `f` over 5 runs after one warm-up (each run reads its result back, so
/// the work is done when the clock stops).
fn median_ms(mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    f()?;
    let mut t = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = std::time::Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(t[2])
}

/// The stacked forward (and forward + backward to the input) against the generalist's alone.
fn time_forward(g: &advlab::models::LoadedClassifier, e: &advlab::models::LoadedEnsemble, data: &advlab::data::Dataset, device: &burn::prelude::Device) -> Result<advlab::models::ensemble::EnsembleTiming, String> {
    use burn::prelude::*;
    let x = advlab::inference::dataset_tensor(data, 0, data.len(), device);
    let read = |t: Tensor<1>| pollster::block_on(advlab::inference::read_f32(t)).map(|_| ());
    let step = |f: &dyn Fn(Tensor<4>) -> Tensor<1>| {
        let xg = x.clone().autodiff().require_grad();
        let grads = f(xg.clone()).backward();
        read(xg.grad(&grads).expect("input gradient").inner().sum())
    };
    Ok(advlab::models::ensemble::EnsembleTiming {
        device: format!("{device:?}"),
        batch: data.len(),
        members: e.model.members(),
        generalist_forward_ms: median_ms(|| read(g.model.forward(x.clone()).sum()))?,
        ensemble_forward_ms: median_ms(|| read(e.model.forward(x.clone()).sum()))?,
        generalist_step_ms: median_ms(|| step(&|xg| g.grad_model.forward(xg).sum()))?,
        ensemble_step_ms: median_ms(|| step(&|xg| e.grad_model.forward(xg).sum()))?,
    })
}
