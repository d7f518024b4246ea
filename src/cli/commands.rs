//! The work behind each `lab` subcommand; everything numeric lives in the library.

use advlab::data::{load_splits, Dataset};
use advlab::defenses::squeeze::calibrate;
use advlab::inference;
use advlab::records::{parse_records, report_markdown};
use advlab::models::{load_model, Classifier, DatasetKind, ModelManifest};
use advlab::preprocess;
use advlab::samples::SamplePack;
use advlab::train::{self, TrainOptions};
use burn::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub type Res = Result<(), String>;

/// The device native runs use: Vulkan through wgpu when built with `--features gpu`, else
/// burn's Flex CPU backend.
/// Whether `--device` asked for the GPU (set once, before any command runs).
static USE_GPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Reads `--device`: `cpu`, `gpu`, or nothing for the build's default (the GPU when built with
/// the `gpu` feature). A GPU asked of a CPU-only build is an error that says how to build one.
pub fn choose_device(choice: Option<&str>) -> Result<(), String> {
    let gpu = match choice {
        None => cfg!(feature = "gpu"),
        Some("cpu") => false,
        Some("gpu") if cfg!(feature = "gpu") => true,
        Some("gpu") => {
            return Err("this lab was built without GPU support: build it with `cargo build --release --features gpu` (burn's wgpu backend on Vulkan), or use --device cpu".into());
        }
        Some(other) => return Err(format!("unknown device '{other}' (expected cpu or gpu)")),
    };
    USE_GPU.set(gpu).map_err(|_| "the device was chosen twice".to_string())
}

/// The compute device `--device` chose.
pub fn device() -> Device {
    #[cfg(feature = "gpu")]
    if *USE_GPU.get().unwrap_or(&true) {
        return Device::vulkan(Default::default());
    }
    Device::flex()
}

pub fn dataset(name: &str) -> Result<DatasetKind, String> {
    DatasetKind::parse(name)
}

fn data_dir(kind: DatasetKind, data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(|| PathBuf::from("../shared/data").join(kind.name()))
}

pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The committed model of a data set, checked against its manifest.
pub fn committed_model(kind: DatasetKind, models: &Path, device: &Device) -> Result<(ModelManifest, Classifier), String> {
    let mpath = models.join(format!("{}.json", kind.name()));
    let text = std::fs::read_to_string(&mpath)
        .map_err(|e| format!("{}: {e} (train it first: lab train {})", mpath.display(), kind.name()))?;
    let manifest = ModelManifest::parse(&text).map_err(|e| format!("{}: {e}", mpath.display()))?;
    let wpath = models.join(&manifest.weights);
    let model = load_model(&manifest, &read(&wpath)?, device).map_err(|e| format!("{}: {e}", wpath.display()))?;
    Ok((manifest, model))
}

pub fn sample_pack(kind: DatasetKind, models: &Path) -> Result<(SamplePack, Dataset), String> {
    let jpath = models.join(format!("{}-samples.json", kind.name()));
    let pack = SamplePack::parse(&std::fs::read_to_string(&jpath).map_err(|e| format!("{}: {e}", jpath.display()))?)?;
    let data = pack.dataset(&read(&models.join(&pack.file))?)?;
    Ok((pack, data))
}

#[allow(clippy::too_many_arguments)]
pub fn train(
    name: &str,
    data: Option<PathBuf>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    learning_rate: Option<f64>,
    seed: Option<u64>,
    augment: Option<bool>,
    new_phase: bool,
    average_from: Option<usize>,
    models: &Path,
    checkpoint: Option<PathBuf>,
    limit: Option<usize>,
) -> Res {
    let kind = dataset(name)?;
    let mut options = TrainOptions::defaults(kind);
    options.epochs = epochs.unwrap_or(options.epochs);
    options.batch_size = batch_size.unwrap_or(options.batch_size);
    options.learning_rate = learning_rate.unwrap_or(options.learning_rate);
    options.seed = seed.unwrap_or(options.seed);
    options.augment = augment.unwrap_or(options.augment);
    options.new_phase = new_phase;
    options.average_from = average_from;
    let dir = data_dir(kind, data.clone());
    eprintln!("reading {} from {}", kind.name(), dir.display());
    let mut splits = load_splits(kind, &dir).map_err(|e| e.to_string())?;
    if let Some(n) = limit {
        splits.train = splits.train.take(n);
    }
    eprintln!("{} training images, {} test images", splits.train.len(), splits.test.len());
    let checkpoint = checkpoint.unwrap_or_else(|| models.join("checkpoints").join(format!("{}.ckpt", kind.name())));
    let log_path = checkpoint.with_file_name(format!("{}-train.log", kind.name()));
    let mut log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).ok();
    let mut log = |line: &str| {
        eprintln!("{line}");
        if let Some(f) = log_file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    };
    log(&format!("lab train {} {:?}", kind.name(), options));
    let device = device();
    let outcome = train::train(kind, &splits, &options, &checkpoint, &device, &mut log)?;
    let manifest = train::publish(models, kind, &outcome, splits.test.len())?;
    log(&format!(
        "published {}/{} ({} parameters, sha256 {}): test accuracy {:.4} on {} images after {} epochs, {:.0} s",
        models.display(),
        manifest.weights,
        manifest.parameters,
        manifest.sha256,
        manifest.test_accuracy,
        manifest.test_images,
        manifest.training.epochs,
        manifest.training.seconds
    ));
    write_samples(kind, &splits.test, 100, models, &outcome.model, &device)
}

fn write_samples(kind: DatasetKind, test: &Dataset, count: usize, models: &Path, model: &Classifier, device: &Device) -> Res {
    let pack_data = test.take(count);
    let predicted = pollster::block_on(inference::predict_dataset(model, &pack_data, 100, device))?;
    let file = format!("{}-samples.bin", kind.name());
    let pack = SamplePack {
        dataset: kind,
        count: pack_data.len(),
        shape: kind.shape().dims(),
        labels: pack_data.labels.clone(),
        file: file.clone(),
        predicted: predicted.iter().map(|&p| p as u8).collect(),
        source: format!("the first {} images of the {} test set", pack_data.len(), kind.name()),
    };
    std::fs::write(models.join(&file), &pack_data.images).map_err(|e| e.to_string())?;
    let jpath = models.join(format!("{}-samples.json", kind.name()));
    std::fs::write(&jpath, serde_json::to_string(&pack).unwrap() + "\n").map_err(|e| e.to_string())?;
    eprintln!("wrote {} ({} images)", jpath.display(), pack.count);
    Ok(())
}

pub fn samples(name: &str, data: Option<PathBuf>, count: usize, models: &Path) -> Res {
    let kind = dataset(name)?;
    let device = device();
    let (_, model) = committed_model(kind, models, &device)?;
    let splits = load_splits(kind, &data_dir(kind, data)).map_err(|e| e.to_string())?;
    write_samples(kind, &splits.test, count, models, &model, &device)
}

/// Decodes an image file natively into RGBA, with the same checks the page makes.
pub fn decode_image_file(path: &Path) -> Result<(Vec<u8>, usize, usize), String> {
    let bytes = read(path)?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("{}: not a decodable image: {e}", path.display()))?;
    let rgba = img.to_rgba8();
    Ok((rgba.as_raw().clone(), img.width() as usize, img.height() as usize))
}

pub fn predict(name: &str, sample: Option<usize>, image: Option<PathBuf>, json: bool, models: &Path) -> Res {
    let kind = dataset(name)?;
    let engine = super::attack::engine_for(kind, models)?;
    let manifest = &engine.generalist(kind)?.manifest;
    let (pixels, label) = match (sample, image) {
        (Some(i), None) => {
            let (_, data) = sample_pack(kind, models)?;
            if i >= data.len() {
                return Err(format!("sample {i} does not exist: the pack has {} images", data.len()));
            }
            (data.image_f32(i), Some(data.labels[i]))
        }
        (None, Some(path)) => {
            let (rgba, w, h) = decode_image_file(&path)?;
            (preprocess::prepare(kind, &rgba, w, h)?, None)
        }
        _ => return Err("give exactly one of --sample N or --image FILE".into()),
    };
    let probs = pollster::block_on(engine.predict(kind, &pixels))?;
    let predicted = inference::argmax_rows(&probs, probs.len())[0];
    if json {
        println!("{}", serde_json::json!({ "label": label, "predicted": predicted, "class": manifest.classes[predicted], "probabilities": probs }));
    } else {
        if let Some(l) = label {
            println!("label: {} ({})", l, manifest.classes[l as usize]);
        }
        println!("predicted: {} ({})", predicted, manifest.classes[predicted]);
        for (c, p) in probs.iter().enumerate() {
            println!("  {:>10} {:.6} {}", manifest.classes[c], p, "#".repeat((p * 40.0).round() as usize));
        }
    }
    Ok(())
}

pub fn eval(name: &str, data: Option<PathBuf>, models: &Path, limit: Option<usize>) -> Res {
    let kind = dataset(name)?;
    let device = device();
    let (manifest, model) = committed_model(kind, models, &device)?;
    let splits = load_splits(kind, &data_dir(kind, data)).map_err(|e| e.to_string())?;
    let test = limit.map(|n| splits.test.take(n)).unwrap_or(splits.test);
    let start = Instant::now();
    let acc = pollster::block_on(inference::accuracy(&model, &test, 500, &device))?;
    println!(
        "{}: test accuracy {:.4} on {} images ({:.1} s; manifest says {:.4})",
        kind.name(),
        acc,
        test.len(),
        start.elapsed().as_secs_f64(),
        manifest.test_accuracy
    );
    Ok(())
}

pub fn bench(name: &str, batch: usize, iterations: usize) -> Res {
    let kind = dataset(name)?;
    let device = device();
    let config = advlab::models::ClassifierConfig::for_dataset(kind);
    let shape = kind.shape();
    let pixels: Vec<f32> = (0..batch * shape.len()).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let labels: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
    let model = config.init(&device);
    let run = |f: &mut dyn FnMut()| {
        f();
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        (batch * iterations) as f64 / start.elapsed().as_secs_f64()
    };
    let inf = run(&mut || {
        let _ = pollster::block_on(inference::read_f32(model.forward(inference::to_tensor(&pixels, shape, &device))));
    });
    let ad = device.clone().autodiff();
    let tmodel = config.init(&ad);
    let tr = run(&mut || {
        let loss = train::cross_entropy(tmodel.forward(inference::to_tensor(&pixels, shape, &ad)), &labels);
        let _ = loss.backward();
    });
    println!("{} net, batch {batch}, {iterations} iterations, {:?}:", kind.name(), device);
    println!("  inference            {inf:8.1} images/s");
    println!("  training fwd+bwd     {tr:8.1} images/s");
    Ok(())
}

pub fn write_png(path: &Path, pixels: &[f32], shape: advlab::data::ImageShape) -> Res {
    let rgba = preprocess::to_rgba(pixels, shape);
    let img = image::RgbaImage::from_raw(shape.width as u32, shape.height as u32, rgba).ok_or("bad image size")?;
    img.save(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn report(records: &Path) -> Res {
    let text = std::fs::read_to_string(records).map_err(|e| format!("{}: {e}", records.display()))?;
    print!("{}", report_markdown(&parse_records(&text, &records.display().to_string())?));
    Ok(())
}

pub fn defend(name: &str, data: Option<PathBuf>, models: &Path, calibration: usize) -> Res {
    let kind = dataset(name)?;
    let device = device();
    let (manifest, model) = committed_model(kind, models, &device)?;
    let test = load_splits(kind, &data_dir(kind, data)).map_err(|e| e.to_string())?.test;
    // Held out from the attacked images (the first correctly classified ones), and split in two:
    // one half sets the threshold, the other checks the false-positive rate it gives.
    let start = 1000.min(test.len());
    let held = test.slice(start, start + 2 * calibration);
    let config = pollster::block_on(calibrate(&model, &manifest.sha256, kind, &held, &device))?;
    // Benign accuracy of each defense on the whole test set.
    let accuracy = |squeezer: Option<advlab::squeezers::Squeezer>| -> Result<f64, String> {
        let mut correct = 0;
        for s in (0..test.len()).step_by(500) {
            let e = (s + 500).min(test.len());
            let mut x = inference::dataset_tensor(&test, s, e, &device);
            if let Some(q) = squeezer {
                x = q.apply(x);
            }
            let logits = pollster::block_on(inference::read_f32(model.forward(x)))?;
            correct += inference::argmax_rows(&logits, 10).iter().zip(&test.labels[s..e]).filter(|(p, l)| **p == **l as usize).count();
        }
        Ok(correct as f64 / test.len() as f64)
    };
    println!("{}: detector {} threshold {:.5} (5% of {} benign images flagged; {:.1}% of {} others)",
        kind.name(), config.squeezers.iter().map(|s| s.name()).collect::<Vec<_>>().join(" + "), config.threshold, config.calibration_images,
        100.0 * config.false_positive_rate, held.len() - config.calibration_images);
    println!("  benign accuracy: bare {:.4}, {} {:.4}, {} {:.4}", accuracy(None)?, config.bit_depth.name(), accuracy(Some(config.bit_depth))?, config.median.name(), accuracy(Some(config.median))?);
    let path = models.join(format!("{}-squeeze.json", kind.name()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap() + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
