//! `lab`: the native command line of the lab (training, prediction, evaluation, benchmarks).

mod commands;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "lab", about = "Adversarial-example lab: train, predict, attack and evaluate natively")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier (resumes from its checkpoint) and publish weights + manifest to models/.
    Train {
        /// mnist or cifar10
        dataset: String,
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
        /// Where weights and manifest go
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Checkpoint file (default models/checkpoints/<dataset>.ckpt)
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Use only the first N training images (quick runs and tests)
        #[arg(long)]
        limit: Option<usize>,
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
    Attack {
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// cw, fgsm or pgd
        #[arg(long, default_value = "cw")]
        attack: String,
        /// Number of correctly classified test images to attack
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Aim at a random other class per image (seeded) instead of any wrong class
        #[arg(long)]
        targeted: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        epsilon: Option<f32>,
        #[arg(long)]
        step_size: Option<f32>,
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        binary_search_steps: Option<usize>,
        #[arg(long)]
        initial_const: Option<f64>,
        #[arg(long)]
        confidence: Option<f32>,
        #[arg(long)]
        learning_rate: Option<f64>,
        /// PGD: start at the image itself instead of a random point of the ball
        #[arg(long)]
        no_random_start: bool,
        /// CW: start each binary-search round from a random point this far (L-inf) from the image
        #[arg(long)]
        start_noise: Option<f32>,
        /// Images attacked together
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Write each adversarial example as a PNG into this folder
        #[arg(long)]
        png: Option<PathBuf>,
        /// Append the record to this JSON-lines file
        #[arg(long)]
        json: Option<PathBuf>,
        /// Attack a defended system: none, bit-depth, median or detector
        #[arg(long, default_value = "none")]
        defense: String,
        /// Aim at the defense itself (He et al.'s adaptive attack) instead of the bare model
        #[arg(long)]
        adaptive: bool,
    },
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
    Bench {
        #[arg(long, default_value = "mnist")]
        dataset: String,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        #[arg(long, default_value_t = 5)]
        iterations: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train { dataset, data, epochs, batch_size, learning_rate, seed, models, checkpoint, limit } => {
            commands::train(&dataset, data, epochs, batch_size, learning_rate, seed, &models, checkpoint, limit)
        }
        Command::Samples { dataset, data, count, models } => commands::samples(&dataset, data, count, &models),
        Command::Predict { dataset, sample, image, json, models } => commands::predict(&dataset, sample, image, json, &models),
        Command::Eval { dataset, data, models, limit } => commands::eval(&dataset, data, &models, limit),
        Command::Attack {
            dataset, attack, count, targeted, seed, epsilon, step_size, steps, binary_search_steps, initial_const,
            confidence, learning_rate, no_random_start, start_noise, batch_size, data, models, png, json, defense, adaptive,
        } => commands::attack(commands::AttackArgs {
            dataset, attack, count, targeted, seed, epsilon, step_size, steps, binary_search_steps, initial_const,
            confidence, learning_rate, random_start: !no_random_start, start_noise, batch_size, data, models, png, json, defense, adaptive,
        }),
        Command::Defend { dataset, data, models, calibration } => commands::defend(&dataset, data, &models, calibration),
        Command::Report { records } => commands::report(&records),
        Command::Bench { dataset, batch_size, iterations } => commands::bench(&dataset, batch_size, iterations),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
