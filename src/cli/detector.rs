//! `lab train detector <gong|metzen|feinman>`: case study 3's detectors on CIFAR-10 (see
//! `advlab::train::detector`), resumable, published to models/ with their manifests, each loaded
//! back through the model set as the systems will load it.

use crate::commands::{device, read, Res};
use advlab::data::load_splits;
use advlab::models::detectors::DetectorKind;
use advlab::models::{DatasetKind, ModelManifest, ModelSet};
use advlab::train::detector::{publish, train_detector, DetectorOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Loads the data set's case-study-3 detectors that a comma-separated list of systems names.
pub fn load_if_named(engine: &mut advlab::engine::Engine, kind: DatasetKind, defenses: &str, models: &Path) -> Res {
    for d in DetectorKind::ALL {
        if defenses.split([',', '+']).any(|p| p.trim() == d.name()) {
            if kind != DatasetKind::Cifar10 {
                return Err(format!("the {} detector is trained for cifar10 only (case study 3), not {}", d.name(), kind.name()));
            }
            engine.models.load_detector_from_dir(models, kind, d)?;
        }
    }
    Ok(())
}

pub struct Args {
    pub which: Option<String>,
    pub data: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub seed: Option<u64>,
    pub models: PathBuf,
    /// Training images attacked (the last fifth held out to measure detection).
    pub images: Option<usize>,
    pub per_class: Option<usize>,
}

pub fn train(args: Args) -> Res {
    let which = args.which.as_deref().ok_or("which detector? lab train detector <gong|metzen|feinman>")?;
    let kind = DetectorKind::parse(which)?;
    let dataset = DatasetKind::Cifar10;
    let d = DetectorOptions::default();
    let images = args.images.unwrap_or(d.images);
    let options = DetectorOptions {
        images,
        validation: images / 5,
        // Gong's network is the classifier's size: 15 epochs (Metzen's subnetwork: 20).
        epochs: args.epochs.unwrap_or(if kind == DetectorKind::Gong { 15 } else { d.epochs }),
        batch_size: args.batch_size.unwrap_or(d.batch_size),
        learning_rate: args.learning_rate.unwrap_or(d.learning_rate),
        seed: args.seed.unwrap_or(d.seed),
        per_class: args.per_class.unwrap_or(d.per_class),
        ..d
    };
    let models = &args.models;
    let mpath = models.join("cifar10.json");
    let manifest = ModelManifest::parse(&std::fs::read_to_string(&mpath).map_err(|e| format!("{}: {e} (train it first: lab train cifar10)", mpath.display()))?)
        .map_err(|e| format!("{}: {e}", mpath.display()))?;
    let bytes = read(&models.join(&manifest.weights))?;
    let dir = args.data.unwrap_or_else(|| PathBuf::from("../shared/data/cifar10"));
    let splits = load_splits(dataset, &dir).map_err(|e| e.to_string())?;
    let checkpoints = models.join("checkpoints");
    let log_path = checkpoints.join("cifar10-detectors-train.log");
    std::fs::create_dir_all(&checkpoints).map_err(|e| format!("{}: {e}", checkpoints.display()))?;
    let mut log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut log = |line: &str| {
        eprintln!("{line}");
        let _ = writeln!(log_file, "{line}");
    };
    log(&format!("lab train detector {which} {options:?}; {} training images", splits.train.len()));
    let device = device();
    let trained = train_detector(kind, (&manifest, &bytes), &splits, &options, &checkpoints, &device, &mut log)?;
    let published = publish(models, &manifest, trained, &options)?;
    log(&format!(
        "published {}/{} ({} bytes, sha256 {}): threshold {:.4} (5% of {} benign held-out training images above), {:.2}% of {} other ones flagged",
        models.display(),
        published.weights,
        published.bytes,
        published.sha256,
        published.threshold,
        published.calibration_images,
        100.0 * published.false_positive_rate,
        published.false_positive_images
    ));
    // Loaded back as a system loads it: the sha256 and shapes must check out.
    let mut set = ModelSet::new(device);
    set.insert(manifest.clone(), &bytes)?;
    set.load_detector_from_dir(models, dataset, kind)?;
    Ok(())
}

/// `lab bench --detector-step`: milliseconds per adaptive C&W step (forward, gradient to the
/// input, verdict on the iterate, Adam) against the bare CIFAR-10 classifier and each system with
/// case study 3's detectors, at batch 1 and 64 on the sample pack (issue 14, item 4, natively).
pub fn step_timing(models: &Path, rounds: usize) -> Res {
    use advlab::attacks::{cw::cw_l2, CwParams, Goal, Silent};
    let dataset = DatasetKind::Cifar10;
    let mut engine = crate::attack::engine_for(dataset, models)?;
    load_if_named(&mut engine, dataset, "gong+metzen+feinman", models)?;
    let device = engine.device().clone();
    let (_, pack) = crate::commands::sample_pack(dataset, models)?;
    for batch in [1usize, 64] {
        let n = batch.min(pack.len());
        let x = advlab::inference::dataset_tensor(&pack, 0, n, &device);
        let goal = Goal::untargeted(pack.labels[..n].iter().map(|&l| l as usize).collect(), 10);
        let steps = if batch == 1 { 20 } else { 4 };
        let params = |steps| CwParams { steps, binary_search_steps: 1, initial_const: 1.0, abort_early: false, ..CwParams::default() };
        let mut bare_ms = f64::NAN;
        for spelling in ["none", "gong", "metzen", "feinman", "gong+metzen+feinman"] {
            let system = engine.system(dataset, spelling)?.build(&engine.models)?;
            pollster::block_on(cw_l2(&system, x.clone(), &goal, &params(2), &mut Silent))?;
            let mut ms: Vec<f64> = (0..rounds.max(1))
                .map(|_| {
                    let t = std::time::Instant::now();
                    pollster::block_on(cw_l2(&system, x.clone(), &goal, &params(steps), &mut Silent)).map(|_| t.elapsed().as_secs_f64() * 1000.0 / steps as f64)
                })
                .collect::<Result<_, _>>()?;
            ms.sort_by(f64::total_cmp);
            let median = ms[ms.len() / 2];
            if spelling == "none" {
                bare_ms = median;
            }
            println!("cifar10 batch {batch} {spelling}: {median:.1} ms per adaptive C&W step ({:.2}x the bare classifier's; median of {} runs of {steps} steps)", median / bare_ms, ms.len());
        }
    }
    Ok(())
}
