//! `lab`: the native command line of the lab (training, prediction, evaluation, benchmarks).

mod attack;
mod bench;
mod commands;
mod detector;
mod specialists;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "lab", about = "Adversarial-example lab: train, predict, attack and evaluate natively")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where the lab computes: cpu (burn's Flex backend) or gpu (burn's wgpu backend on Vulkan;
    /// needs a build with `cargo build --release --features gpu`). Default: gpu in a GPU build,
    /// else cpu
    #[arg(long, global = true)]
    device: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier (resumes from its checkpoint) and publish weights + manifest to models/;
    /// `specialists`: the Specialists+1 ensemble of MNIST (resumes, skipping finished specialists).
    Train {
        /// mnist, cifar10, specialists, or detector (case study 3, on CIFAR-10)
        dataset: String,
        /// detector: which one (gong, metzen or feinman)
        which: Option<String>,
        /// Data directory (default ../shared/data/<dataset>)
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long)]
        learning_rate: Option<f64>,
        #[arg(long)]
        seed: Option<u64>,
        /// Random shifts and flips of the training images (default: on for CIFAR-10, off for
        /// MNIST); may change when a run resumes, which the log and the manifest record
        #[arg(long)]
        augment: Option<bool>,
        /// Start a new cosine phase at the checkpoint (warm restart) from --learning-rate down to
        /// 0 at --epochs; resume that phase later without this flag
        #[arg(long)]
        new_phase: bool,
        /// Weight averaging: publish the mean of the weights after each epoch past this one
        /// (given once, at the start or on resume; the checkpoint keeps it)
        #[arg(long)]
        average_from: Option<usize>,
        /// Where weights and manifest go
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Checkpoint file (default models/checkpoints/<dataset>.ckpt)
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Use only the first N training images (quick runs and tests)
        #[arg(long)]
        limit: Option<usize>,
        /// specialists: at most this many training images per specialist and epoch (a seeded subset)
        #[arg(long)]
        specialist_images: Option<usize>,
        /// specialists: held-out benign test images (from image 1000 on) for the detector's threshold
        #[arg(long, default_value_t = 2000)]
        calibration: usize,
        /// detector: training images attacked (CW-L2 and FGSM; the last fifth held out to measure detection)
        #[arg(long)]
        images: Option<usize>,
        /// detector feinman: benign training images per class in the kernel density sample
        #[arg(long)]
        per_class: Option<usize>,
    },
    /// Write the sample pack (first N test images + the committed model's predictions).
    Samples {
        dataset: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
    /// Classify a sample of the pack or an image file.
    Predict {
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// Index into the sample pack
        #[arg(long)]
        sample: Option<usize>,
        /// An image file (PNG/JPEG), prepared as the page prepares uploads
        #[arg(long)]
        image: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
    /// Accuracy of a committed model on the test set.
    Eval {
        dataset: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Attack the first N correctly classified test images and report success and distortion.
    Attack(attack::AttackArgs),
    /// Calibrate the feature-squeezing detector (5% false positives on held-out benign test
    /// images), measure the defenses' benign accuracy, write models/<dataset>-squeeze.json.
    Defend {
        dataset: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Held-out benign images for the threshold (taken from test image 1000 on)
        #[arg(long, default_value_t = 2000)]
        calibration: usize,
    },
    /// Render attack records (JSON lines written by `lab attack --json`) as a Markdown table.
    Report {
        records: PathBuf,
    },
    /// Throughput figures (inference, training) on this machine.
    /// Throughput figures (inference, training) on this machine; with --attack-step, the time of
    /// one Carlini-Wagner L2 step (the lab's real attack, committed weights) at batch 1 and 64 on
    /// both nets, the figure tests/bench/torch_step.py measures for PyTorch
    Bench {
        #[arg(long, default_value = "mnist")]
        dataset: String,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        #[arg(long, default_value_t = 5)]
        iterations: usize,
        #[arg(long)]
        attack_step: bool,
        /// The adaptive C&W step against case study 3's detectors (CIFAR-10), next to the bare classifier's
        #[arg(long)]
        detector_step: bool,
        /// Timed runs per case (--attack-step); the median is reported
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Print JSON (--attack-step)
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = commands::choose_device(cli.device.as_deref()) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let result = match cli.command {
        Command::Train { dataset, data, epochs, batch_size, learning_rate, seed, models, limit, calibration, specialist_images, .. } if dataset == "specialists" => {
            specialists::train(specialists::Args { data, epochs, batch_size, learning_rate, seed, models, limit, max_images: specialist_images, calibration })
        }
        Command::Train { dataset, which, data, epochs, batch_size, learning_rate, seed, models, images, per_class, .. } if dataset == "detector" => {
            detector::train(detector::Args { which, data, epochs, batch_size, learning_rate, seed, models, images, per_class })
        }
        Command::Train { dataset, data, epochs, batch_size, learning_rate, seed, augment, new_phase, average_from, models, checkpoint, limit, .. } => {
            commands::train(&dataset, data, epochs, batch_size, learning_rate, seed, augment, new_phase, average_from, &models, checkpoint, limit)
        }
        Command::Samples { dataset, data, count, models } => commands::samples(&dataset, data, count, &models),
        Command::Predict { dataset, sample, image, json, models } => commands::predict(&dataset, sample, image, json, &models),
        Command::Eval { dataset, data, models, limit } => commands::eval(&dataset, data, &models, limit),
        Command::Attack(args) => attack::attack(args),
        Command::Defend { dataset, data, models, calibration } => commands::defend(&dataset, data, &models, calibration),
        Command::Report { records } => commands::report(&records),
        Command::Bench { detector_step: true, rounds, models, .. } => detector::step_timing(&models, rounds),
        Command::Bench { attack_step: true, rounds, json, models, .. } => bench::attack_step(&models, rounds, json),
        Command::Bench { dataset, batch_size, iterations, .. } => commands::bench(&dataset, batch_size, iterations),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
