//! The work behind each `lab` subcommand; everything numeric lives in the library.

use advlab::attacks::{Goal, ModelTarget, Observer, Progress};
use advlab::defenses::squeeze::{detector_score, threshold_for_rate};
use advlab::defenses::{defended_system, SqueezeConfig};
use advlab::data::{load_splits, Dataset};
use advlab::evaluate::{first_correct, random_targets, rounded_success, run_against, summarise, AttackOptions, AttackRecord, AttackSpec};
use advlab::inference;
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
pub fn device() -> Device {
    #[cfg(feature = "gpu")]
    {
        return Device::vulkan(Default::default());
    }
    #[allow(unreachable_code)]
    Device::flex()
}

fn dataset(name: &str) -> Result<DatasetKind, String> {
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
    let device = device();
    let (manifest, model) = committed_model(kind, models, &device)?;
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
    let x = inference::to_tensor(&pixels, kind.shape(), &device);
    let probs = pollster::block_on(inference::probabilities(&model, x))?;
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
    let config = kind.architecture();
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

#[derive(clap::Args)]
pub struct AttackArgs {
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// cw, fgsm or pgd
    #[arg(long, default_value = "cw")]
    pub attack: String,
    /// Number of correctly classified test images to attack
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Aim at a random other class per image (seeded) instead of any wrong class
    #[arg(long)]
    pub targeted: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub options: AttackOptions,
    /// Images attacked together
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Write each adversarial example as a PNG into this folder
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Append the record to this JSON-lines file
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Attack a defended system: none, bit-depth, median or detector; several, comma-separated,
    /// share one non-adaptive attack on the bare model (each judges it) and get a record each
    #[arg(long, default_value = "none")]
    pub defense: String,
    /// Aim at the defense itself (He et al.'s adaptive attack) instead of the bare model
    #[arg(long)]
    pub adaptive: bool,
}

/// A progress bar for attacks: a line every few steps.
struct Bar {
    label: String,
    every: usize,
}

impl Observer for Bar {
    fn due(&mut self, step: usize) -> bool {
        step % self.every == 0
    }
    async fn report(&mut self, p: Progress) -> bool {
        let frac = p.step as f64 / p.total_steps.max(1) as f64;
        let filled = (frac * 30.0) as usize;
        eprint!(
            "\r{} [{}{}] step {}/{} round {} loss {:.4} L2 {:.3} best {:.3} adversarial {}   ",
            self.label,
            "#".repeat(filled.min(30)),
            "-".repeat(30 - filled.min(30)),
            p.step,
            p.total_steps,
            p.round,
            p.loss,
            p.l2,
            p.best_l2,
            p.successes
        );
        let _ = std::io::stderr().flush();
        true
    }
}

pub fn attack(a: AttackArgs) -> Res {
    let kind = dataset(&a.dataset)?;
    let spec = AttackSpec::build(&a.attack, &a.options)?;
    let device = device();
    let (manifest, model) = committed_model(kind, &a.models, &device)?;
    let ad = device.clone().autodiff();
    let (_, grad_model) = committed_model(kind, &a.models, &ad)?;
    let grad_model = grad_model.freeze();
    let test = match load_splits(kind, &data_dir(kind, a.data.clone())) {
        Ok(s) => s.test,
        Err(e) => {
            eprintln!("{e}; using the sample pack instead");
            sample_pack(kind, &a.models)?.1
        }
    };
    let chosen = pollster::block_on(first_correct(&model, &test, a.count, &device))?;
    eprintln!("{}: attacking the first {} correctly classified test images with {}", kind.name(), chosen.len(), spec.name());
    // Several defenses at once (comma-separated): a non-adaptive attack is made once on the bare
    // model and judged by each; an adaptive one runs against each system in turn.
    let defenses: Vec<&str> = a.defense.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    let squeeze = if defenses.iter().all(|d| *d == "none") { None } else { Some(squeeze_config(kind, &a.models, &manifest)?) };
    let systems = defenses.iter().map(|d| defended_system(d, squeeze.as_ref(), &grad_model, &model)).collect::<Result<Vec<_>, _>>()?;
    let bare = ModelTarget { grad_model: &grad_model, model: &model };
    let start = Instant::now();
    let mut outputs: Vec<Vec<advlab::attacks::AttackOutput>> = vec![Vec::new(); systems.len()];
    let mut rounded: Vec<Vec<bool>> = vec![Vec::new(); systems.len()];
    let mut seconds = vec![0.0; systems.len()];
    for (b, batch) in chosen.chunks(a.batch_size).enumerate() {
        let sub = Dataset {
            shape: test.shape,
            images: batch.iter().flat_map(|&i| test.image(i).to_vec()).collect(),
            labels: batch.iter().map(|&i| test.labels[i]).collect(),
        };
        let labels: Vec<usize> = sub.labels.iter().map(|&l| l as usize).collect();
        let goal = if a.targeted {
            let targets = random_targets(&labels, 10, a.seed.wrapping_add(b as u64));
            Goal::targeted(labels, targets, 10)
        } else {
            Goal::untargeted(labels, 10)
        };
        let x = inference::dataset_tensor(&sub, 0, sub.len(), &device);
        let mut bar = Bar { label: format!("batch {}", b + 1), every: 50 };
        let targets: Vec<&dyn advlab::attacks::AttackTarget> = systems.iter().map(|s| s.as_ref()).collect();
        let against = pollster::block_on(run_against(&spec, &targets, &bare, a.adaptive, x, &goal, test.shape, &mut bar))?;
        eprintln!();
        for (k, (out, secs)) in against.judged.into_iter().zip(against.seconds).enumerate() {
            rounded[k].extend(pollster::block_on(rounded_success(systems[k].as_ref(), &out, &goal, test.shape, &device))?);
            seconds[k] += secs;
            outputs[k].push(out);
        }
    }
    eprintln!("{:.0} s in all", start.elapsed().as_secs_f64());
    for (k, defense) in defenses.iter().enumerate() {
        let system = match *defense {
            "none" => manifest.weights.clone(),
            d => format!("{} + {d} ({})", manifest.weights, if a.adaptive { "adaptive attack" } else { "attack on the bare model" }),
        };
        let record = summarise(kind.name(), &system, defense, a.adaptive, &spec, a.targeted, &outputs[k], &rounded[k], seconds[k]);
        println!("{} on {} [{}] ({}), {} images:", spec.name(), kind.name(), system, if a.targeted { "targeted, random other class" } else { "untargeted" }, record.images);
        println!("  success rate          {:.1}%", 100.0 * record.success_rate);
        println!("  mean L2               {:.4}", record.mean_l2);
        println!("  median L2             {:.4}", record.median_l2);
        println!("  mean L-inf            {:.4}", record.mean_linf);
        println!("  adversarial as 8-bit  {:.1}%", 100.0 * record.rounded_success_rate);
        println!("  time                  {:.1} s", record.seconds);
        if let Some(dir) = &a.png {
            let dir = if defenses.len() > 1 { dir.join(defense) } else { dir.clone() };
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let n = test.shape.len();
            let outs = outputs[k].iter().flat_map(|o| (0..o.success.len()).map(move |j| (o, j)));
            for (&i, (o, j)) in chosen.iter().zip(outs) {
                if o.success[j] {
                    let path = dir.join(format!("{i:05}-label{}-adv{}.png", test.labels[i], o.predicted[j]));
                    write_png(&path, &o.images[j * n..(j + 1) * n], test.shape)?;
                }
            }
            eprintln!("wrote the adversarial examples to {}", dir.display());
        }
        if let Some(path) = &a.json {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            writeln!(f, "{}", serde_json::to_string(&record).unwrap()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

pub fn write_png(path: &Path, pixels: &[f32], shape: advlab::data::ImageShape) -> Res {
    let rgba = preprocess::to_rgba(pixels, shape);
    let img = image::RgbaImage::from_raw(shape.width as u32, shape.height as u32, rgba).ok_or("bad image size")?;
    img.save(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn report(records: &Path) -> Res {
    let text = std::fs::read_to_string(records).map_err(|e| format!("{}: {e}", records.display()))?;
    let mut all = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let r: AttackRecord = serde_json::from_str(line).map_err(|e| format!("{}:{}: not an attack record: {e}", records.display(), i + 1))?;
        all.push(r);
    }
    print!("{}", report_markdown(&all));
    Ok(())
}

/// The records as Markdown: every run, then the adaptive attacks next to the bare model.
/// A Markdown table: a header row, its rule, and one row per entry.
fn markdown_table(columns: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut md = line(&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    md += &format!("|{}|\n", vec!["---"; columns.len()].join("|"));
    for r in rows {
        md += &line(r);
    }
    md
}

pub fn report_markdown(all: &[AttackRecord]) -> String {
    let dist = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "-".into() };
    let pct = |v: f64| format!("{:.0}%", 100.0 * v);
    let goal = |t: bool| if t { "targeted (random other class)" } else { "untargeted" }.to_string();
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|r| {
            vec![
                r.dataset.clone(),
                r.model.clone(),
                r.attack.name(),
                goal(r.targeted),
                r.images.to_string(),
                pct(r.success_rate),
                dist(r.mean_l2),
                dist(r.median_l2),
                dist(r.mean_linf),
                pct(r.rounded_success_rate),
                format!("{:.0} s", r.seconds),
            ]
        })
        .collect();
    let mut md = markdown_table(
        &["data set", "system", "attack", "goal", "images", "success", "mean L2", "median L2", "mean L-inf", "still adversarial as 8-bit PNG", "time"],
        &rows,
    );
    let adaptive: Vec<&AttackRecord> = all.iter().filter(|r| r.adaptive).collect();
    if adaptive.is_empty() {
        return md;
    }
    let rows: Vec<Vec<String>> = adaptive
        .iter()
        .map(|r| {
            // The baseline: the same attack and goal on the bare model, with the same budget when
            // there is such a run (restarts aside: they only rerun failures), else the last one.
            let bare: Vec<&AttackRecord> = all
                .iter()
                .filter(|b| b.dataset == r.dataset && b.defense == "none" && b.targeted == r.targeted && std::mem::discriminant(&b.attack) == std::mem::discriminant(&r.attack))
                .collect();
            let base = bare.iter().rev().find(|b| same_budget(&b.attack, &r.attack)).or(bare.last());
            let (base_l2, change) = match base {
                Some(b) if b.mean_l2.is_finite() && r.mean_l2.is_finite() => (dist(b.mean_l2), format!("{:+.0}%", 100.0 * (r.mean_l2 / b.mean_l2 - 1.0))),
                Some(b) => (dist(b.mean_l2), "-".into()),
                None => ("-".into(), "-".into()),
            };
            // An ensemble against the strongest of its parts (the one that took the largest mean
            // L2 to break adaptively), as He et al. compare them.
            let part = all
                .iter()
                .filter(|p| p.dataset == r.dataset && p.adaptive && p.targeted == r.targeted && ensemble_parts(&r.defense).contains(&p.defense.as_str()) && p.mean_l2.is_finite())
                .max_by(|a, b| a.mean_l2.total_cmp(&b.mean_l2));
            let (part_l2, part_change) = match part {
                Some(p) if r.mean_l2.is_finite() => (format!("{} ({})", dist(p.mean_l2), p.defense), format!("{:+.0}%", 100.0 * (r.mean_l2 / p.mean_l2 - 1.0))),
                _ => ("-".into(), "-".into()),
            };
            vec![
                r.dataset.clone(),
                r.defense.clone(),
                r.attack.name(),
                goal(r.targeted),
                r.images.to_string(),
                pct(r.success_rate),
                dist(r.mean_l2),
                base_l2,
                change,
                part_l2,
                part_change,
                paper_figure(&r.dataset, &r.defense).to_string(),
            ]
        })
        .collect();
    md += "\n### Adaptive attacks (He et al.) next to the same attack on the bare model\n\n";
    md += &markdown_table(
        &["data set", "defense", "attack", "goal", "images", "success", "mean L2", "bare model's mean L2", "change", "strongest part's mean L2", "change", "He et al."],
        &rows,
    );
    md
}

/// The defenses an ensemble is made of: Xu et al.'s detector combines the bit-depth and the
/// median squeezers.
fn ensemble_parts(defense: &str) -> &'static [&'static str] {
    match defense {
        "detector" => &["bit-depth", "median"],
        _ => &[],
    }
}

fn same_budget(a: &AttackSpec, b: &AttackSpec) -> bool {
    match (a, b) {
        (AttackSpec::Cw(a), AttackSpec::Cw(b)) => {
            (a.steps, a.binary_search_steps, a.initial_const, a.learning_rate, a.confidence) == (b.steps, b.binary_search_steps, b.initial_const, b.learning_rate, b.confidence)
        }
        (a, b) => a.name() == b.name(),
    }
}

/// What He et al. (2017) report for the feature-squeezing case study: adaptive attacks succeed
/// on 99-100%; breaking the ensemble takes +23% (MNIST) and -36% (CIFAR-10) mean L2 relative to
/// its parts.
fn paper_figure(dataset: &str, defense: &str) -> &'static str {
    match (dataset, defense) {
        ("mnist", "detector") => "99-100%, L2 +23%",
        ("cifar10", "detector") => "99-100%, L2 -36%",
        (_, "bit-depth" | "median") => "99-100%",
        _ => "",
    }
}

/// The committed detector configuration of a data set, refused when it was calibrated on other
/// weights than the model in `manifest`.
pub fn squeeze_config(kind: DatasetKind, models: &Path, manifest: &ModelManifest) -> Result<SqueezeConfig, String> {
    let path = models.join(format!("{}-squeeze.json", kind.name()));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e} (calibrate it first: lab defend {})", path.display(), kind.name()))?;
    let config: SqueezeConfig = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    config.check_model(&manifest.sha256).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
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
    let half = held.len() / 2;
    let (squeezers, bit_depth, median) = SqueezeConfig::squeezers_for(kind);
    let scores = |d: &Dataset| -> Result<Vec<f32>, String> {
        let mut out = Vec::new();
        for s in (0..d.len()).step_by(200) {
            let x = inference::dataset_tensor(d, s, (s + 200).min(d.len()), &device);
            out.extend(pollster::block_on(inference::read_f32(detector_score(&model, x, &squeezers)))?);
        }
        Ok(out)
    };
    let fit = scores(&held.slice(0, half))?;
    let check = scores(&held.slice(half, held.len()))?;
    let threshold = threshold_for_rate(&fit, 0.05);
    let fpr = check.iter().filter(|s| **s > threshold).count() as f64 / check.len().max(1) as f64;
    let config = SqueezeConfig { dataset: kind, squeezers, threshold, false_positive_rate: fpr, calibration_images: fit.len(), bit_depth, median, model_sha256: manifest.sha256.clone() };
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
        kind.name(), config.squeezers.iter().map(|s| s.name()).collect::<Vec<_>>().join(" + "), threshold, fit.len(), 100.0 * fpr, check.len());
    println!("  benign accuracy: bare {:.4}, {} {:.4}, {} {:.4}", accuracy(None)?, bit_depth.name(), accuracy(Some(bit_depth))?, median.name(), accuracy(Some(median))?);
    let path = models.join(format!("{}-squeeze.json", kind.name()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap() + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
