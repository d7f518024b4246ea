//! `lab attack`: an attack on the first N test images that each defended system classifies
//! correctly and does not flag, with a record per system (see `advlab::records`).

use super::commands::{dataset, device, sample_pack, write_png, Res};
use advlab::attacks::{AttackOptions, AttackSpec, Observer, Progress};
use advlab::data::{load_splits, Dataset, DatasetKind};
use advlab::engine::Engine;
use advlab::evaluate::{evaluate, first_accepted, Plan};
use advlab::models::ModelSet;
use advlab::records::{summarise, RunInfo};
use advlab::system::DefendedSystem;
use advlab::target::AttackTarget;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct AttackArgs {
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// cw, fgsm or pgd
    #[arg(long, default_value = "cw")]
    pub attack: String,
    /// Number of test images to attack: the first ones each system classifies correctly and
    /// does not flag
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Aim at a random other class per image (seeded by the image's index) instead of any
    /// wrong class
    #[arg(long)]
    pub targeted: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub options: AttackOptions,
    /// Images attacked together
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// The data set's directory (default ../shared/data/<dataset>), or `samples` for the
    /// model's 100-image sample pack; a missing data set is an error, never a silent fallback
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
    /// The defended system: parts joined by '+' and applied in that order, from none,
    /// bit-depth, median (preprocessing) and detector (the feature-squeezing detector), e.g.
    /// bit-depth+median+detector; or a JSON system description. Several systems,
    /// comma-separated, share one non-adaptive attack on the bare model and get a record each
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
        let filled = ((frac * 30.0) as usize).min(30);
        eprint!(
            "\r{} [{}{}] step {}/{} round {} loss {:.4} L2 {:.3} best {:.3} adversarial {}   ",
            self.label,
            "#".repeat(filled),
            "-".repeat(30 - filled),
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

/// The generalist of a data set and, when the file exists, its feature-squeezing calibration.
pub fn engine_for(kind: DatasetKind, models: &Path) -> Result<Engine, String> {
    let mut engine = Engine::new(device());
    engine.models.load_from_dir(models, ModelSet::generalist_name(kind))?;
    let path = models.join(format!("{}-squeeze.json", kind.name()));
    if let Ok(text) = std::fs::read(&path) {
        engine.load_squeeze(&String::from_utf8_lossy(&text)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(engine)
}

/// The test split, from the data set or, only when asked (`--data samples`), the sample pack.
fn test_images(kind: DatasetKind, data: Option<&Path>, models: &Path) -> Result<(Dataset, String), String> {
    if data == Some(Path::new("samples")) {
        let (pack, set) = sample_pack(kind, models)?;
        return Ok((set, format!("{} ({})", models.join(&pack.file).display(), pack.source)));
    }
    let dir = data.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("../shared/data").join(kind.name()));
    let splits = load_splits(kind, &dir).map_err(|e| format!("{e} (give --data PATH, or --data samples to attack the {}-image sample pack)", sample_pack_len(kind, models)))?;
    Ok((splits.test, format!("{} test split", dir.display())))
}

fn sample_pack_len(kind: DatasetKind, models: &Path) -> String {
    sample_pack(kind, models).map(|(p, _)| p.count.to_string()).unwrap_or_else(|_| "committed".into())
}

pub fn attack(a: AttackArgs) -> Res {
    let kind = dataset(&a.dataset)?;
    let spec = AttackSpec::build(&a.attack, &a.options, kind)?;
    let mut engine = engine_for(kind, &a.models)?;
    super::specialists::load_if_named(&mut engine, kind, &a.defense, &a.models)?;
    super::detector::load_if_named(&mut engine, kind, &a.defense, &a.models)?;
    let device = engine.device().clone();
    let (test, source) = test_images(kind, a.data.as_deref(), &a.models)?;
    let generalist = engine.generalist(kind)?;
    let specs = a.defense.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| engine.system(kind, d)).collect::<Result<Vec<_>, _>>()?;
    let systems: Vec<DefendedSystem> = specs.iter().map(|s| s.build(&engine.models)).collect::<Result<_, _>>()?;
    let bare = engine.system(kind, "none")?.build(&engine.models)?;
    let mut chosen = Vec::with_capacity(systems.len());
    for s in &systems {
        chosen.push(pollster::block_on(first_accepted(s, &test, a.count, &device))?);
        eprintln!("{}: {}: the first {} test images it classifies correctly and does not flag", kind.name(), s.spec.name, chosen.last().unwrap().len());
    }
    eprintln!("attacking with {}", spec.name());
    let targets: Vec<&dyn AttackTarget> = systems.iter().map(|s| s as &dyn AttackTarget).collect();
    let plan = Plan {
        spec: &spec,
        systems: &targets,
        bare: &bare,
        adaptive: a.adaptive,
        chosen: &chosen,
        targeted: a.targeted,
        seed: a.seed,
        classes: generalist.manifest.classes.len(),
        batch_size: a.batch_size,
    };
    let start = Instant::now();
    let runs = pollster::block_on(evaluate(&plan, &test, &mut |b| Bar { label: format!("batch {}", b + 1), every: 50 }, &device))?;
    eprintln!("\n{:.0} s in all", start.elapsed().as_secs_f64());
    for (system, run) in systems.iter().zip(&runs) {
        let name = &system.spec.name;
        let model = match name.as_str() {
            "none" => generalist.manifest.weights.clone(),
            d => format!("{} + {d} ({})", generalist.manifest.weights, if a.adaptive { "adaptive attack" } else { "attack on the bare model" }),
        };
        let info = RunInfo { dataset: kind.name(), model: &model, model_sha256: &generalist.manifest.sha256, data: &source, system: &system.spec, adaptive: a.adaptive, targeted: a.targeted };
        let record = summarise(&info, &spec, run);
        println!("{} on {} [{}] ({}), {} images:", spec.name(), kind.name(), model, if a.targeted { "targeted, random other class" } else { "untargeted" }, record.images);
        println!("  success rate          {:.1}%", 100.0 * record.success_rate);
        println!("  mean L2               {:.4}", record.mean_l2);
        println!("  median L2             {:.4}", record.median_l2);
        println!("  mean L-inf            {:.4}", record.mean_linf);
        println!("  adversarial as 8-bit  {:.1}%", 100.0 * record.rounded_success_rate);
        println!("  time                  {:.1} s", record.seconds);
        if let Some(dir) = &a.png {
            let dir = if systems.len() > 1 { dir.join(name.replace('+', "-")) } else { dir.clone() };
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let n = test.shape.len();
            for (k, &i) in run.indices.iter().enumerate() {
                if run.output.success[k] {
                    let path = dir.join(format!("{i:05}-label{}-adv{}.png", test.labels[i], run.output.predicted[k]));
                    write_png(&path, &run.output.images[k * n..(k + 1) * n], test.shape)?;
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
