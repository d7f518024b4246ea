//! The `lab` command line end to end, on the committed model and sample pack: predictions,
//! an attack run with its record and PNGs, and clear errors (no panic) for bad inputs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lab"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = lab().args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("advlab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[test]
fn predict_a_sample_and_an_image_file() {
    let (ok, out, err) = run(&["predict", "--dataset", "mnist", "--sample", "0", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let probs: Vec<f64> = v["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    assert_eq!(probs.len(), 10);
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    assert_eq!(v["label"], 7, "the first MNIST test digit is a 7");
    assert_eq!(v["predicted"], 7);
    // The same digit written as a PNG and classified as an uploaded file.
    let pack = advlab::samples::SamplePack::parse(&std::fs::read_to_string(models().join("mnist-samples.json")).unwrap()).unwrap();
    let data = pack.dataset(&std::fs::read(models().join(&pack.file)).unwrap()).unwrap();
    let dir = tmp("predict");
    let png = dir.join("seven.png");
    image::GrayImage::from_raw(28, 28, data.image(0).to_vec()).unwrap().save(&png).unwrap();
    let (ok, out, err) = run(&["predict", "--dataset", "mnist", "--image", png.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let w: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(w["predicted"], 7);
    let probs2: Vec<f64> = w["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
    assert!(probs.iter().zip(&probs2).all(|(a, b)| (a - b).abs() < 1e-6), "pixel-for-pixel upload must match the sample");
    // Human-readable output names the classes.
    let (ok, out, _) = run(&["predict", "--dataset", "mnist", "--sample", "1"]);
    assert!(ok && out.contains("predicted: 2"), "{out}");
}

#[test]
fn attack_reports_figures_writes_pngs_and_a_record() {
    let dir = tmp("attack");
    let json = dir.join("record.jsonl");
    let pngs = dir.join("png");
    let (ok, out, err) = run(&[
        "attack", "--dataset", "mnist", "--attack", "pgd", "--epsilon", "0.3", "--steps", "10", "--count", "6",
        "--data", "samples", "--png", pngs.to_str().unwrap(), "--json", json.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    for what in ["success rate", "mean L2", "median L2", "mean L-inf", "adversarial as 8-bit", "time"] {
        assert!(out.contains(what), "missing '{what}' in {out}");
    }
    let rec: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&json).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(rec["images"], 6);
    assert_eq!(rec["attack"]["attack"], "pgd");
    let rate = rec["success_rate"].as_f64().unwrap();
    assert!(rate > 0.5, "PGD at epsilon 0.3 should fool an MNIST net: {rate}");
    assert!(rec["mean_linf"].as_f64().unwrap() <= 0.3 + 1e-5);
    let files: Vec<_> = std::fs::read_dir(&pngs).unwrap().collect();
    assert_eq!(files.len() as f64, (rate * 6.0).round(), "one PNG per successful example");
    // The record reproduces: weights, data source, system, and every image with its result.
    assert_eq!(rec["model_sha256"].as_str().unwrap().len(), 64);
    assert!(rec["data"].as_str().unwrap().contains("mnist-samples"), "{}", rec["data"]);
    assert_eq!(rec["system"]["name"], "none");
    let per = rec["per_image"].as_array().unwrap();
    assert_eq!(per.len(), 6);
    assert_eq!(per.iter().filter(|r| r["success"] == true).count() as f64, (rate * 6.0).round());
}

#[test]
fn a_composed_system_is_attacked_adaptively_from_the_command_line() {
    let dir = tmp("composed");
    let json = dir.join("record.jsonl");
    let (ok, out, err) = run(&[
        "attack", "--dataset", "mnist", "--attack", "cw", "--steps", "100", "--binary-search-steps", "2", "--initial-const", "1",
        "--learning-rate", "0.05", "--count", "3", "--data", "samples", "--defense", "median+detector", "--adaptive", "--json", json.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("median+detector (adaptive attack)"), "{out}");
    let rec: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&json).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(rec["defense"], "median+detector");
    assert_eq!(rec["adaptive"], true);
    let system = &rec["system"];
    assert_eq!(system["preprocess"][0]["kind"], "median");
    assert_eq!(system["detectors"][0]["kind"], "feature_squeezing");
    assert_eq!(system["detectors"][0]["model_sha256"], rec["model_sha256"]);
    assert!(rec["success_rate"].as_f64().unwrap() > 0.0, "{rec}");
    // The table shows the non-default parameters of the run.
    let (ok, md, err) = run(&["report", json.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(md.contains("initial_const 1") && md.contains("learning_rate 0.05"), "{md}");
}

#[test]
fn bad_inputs_give_clear_errors_not_panics() {
    let dir = tmp("bad");
    // Not an image.
    let f = dir.join("notes.png");
    std::fs::write(&f, b"just some text").unwrap();
    let (ok, _, err) = run(&["predict", "--image", f.to_str().unwrap()]);
    assert!(!ok && err.contains("not a decodable image") && !err.contains("panicked"), "{err}");
    // A corrupted weights file next to its manifest.
    let m = dir.join("models");
    std::fs::create_dir_all(&m).unwrap();
    for name in ["mnist.json", "mnist-samples.json", "mnist-samples.bin", "mnist.safetensors"] {
        std::fs::copy(models().join(name), m.join(name)).unwrap();
    }
    let mut w = std::fs::read(m.join("mnist.safetensors")).unwrap();
    let k = w.len() / 2;
    w[k] ^= 0x55;
    std::fs::write(m.join("mnist.safetensors"), &w).unwrap();
    let (ok, _, err) = run(&["predict", "--sample", "0", "--models", m.to_str().unwrap()]);
    assert!(!ok && err.contains("corrupted or stale") && !err.contains("panicked"), "{err}");
    // Missing data set, unknown attack, sample out of range.
    let (ok, _, err) = run(&["predict", "--dataset", "imagenet", "--sample", "0"]);
    assert!(!ok && err.contains("unknown data set"), "{err}");
    let (ok, _, err) = run(&["attack", "--attack", "deepfool", "--count", "1"]);
    assert!(!ok && err.contains("unknown attack"), "{err}");
    // No silent fallback to the sample pack when the data set is missing.
    let (ok, _, err) = run(&["attack", "--attack", "fgsm", "--count", "1", "--data", dir.join("nowhere").to_str().unwrap()]);
    assert!(!ok && err.contains("--data samples") && !err.contains("panicked"), "{err}");
    let (ok, _, err) = run(&["attack", "--attack", "fgsm", "--count", "1", "--data", "samples", "--defense", "bit-depth+jpeg"]);
    assert!(!ok && err.contains("unknown defense 'jpeg'"), "{err}");
    let (ok, _, err) = run(&["predict", "--sample", "100000"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    // The device: an unknown one, and a GPU asked of a CPU-only build (how the tests build it),
    // each said plainly; `--device cpu` works anywhere.
    let (ok, _, err) = run(&["predict", "--sample", "0", "--device", "tpu"]);
    assert!(!ok && err.contains("unknown device 'tpu'"), "{err}");
    if !cfg!(feature = "gpu") {
        let (ok, _, err) = run(&["predict", "--sample", "0", "--device", "gpu"]);
        assert!(!ok && err.contains("--features gpu") && !err.contains("panicked"), "{err}");
    }
    let (ok, out, err) = run(&["predict", "--sample", "0", "--device", "cpu"]);
    assert!(ok, "{out}{err}");
}

#[test]
fn report_renders_records_including_attacks_that_never_succeeded() {
    let dir = tmp("report");
    let f = dir.join("r.jsonl");
    let spec = r#"{"attack":"fgsm","epsilon":0.1}"#;
    let ok = format!(r#"{{"dataset":"mnist","model":"mnist.safetensors","attack":{spec},"targeted":false,"images":10,"success_rate":0.5,"mean_l2":1.5,"median_l2":1.4,"mean_linf":0.1,"rounded_success_rate":0.4,"seconds":2.0}}"#);
    let none = format!(r#"{{"dataset":"mnist","model":"mnist.safetensors + detector (attack on the bare model)","attack":{spec},"targeted":true,"images":10,"success_rate":0.0,"mean_l2":null,"median_l2":null,"mean_linf":null,"rounded_success_rate":0.0,"seconds":2.0}}"#);
    std::fs::write(&f, format!("{ok}\n{none}\n")).unwrap();
    let (ok_run, out, err) = run(&["report", f.to_str().unwrap()]);
    assert!(ok_run, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows[2].contains("| 50% | 1.500 | 1.400 | 0.100 | 40% |"), "{}", rows[2]);
    assert!(rows[3].contains("+ detector") && rows[3].contains("| 0% | - | - | - | 0% |"), "{}", rows[3]);
    // An adaptive run gets a second table, beside the same attack on the bare model.
    let adaptive = format!(r#"{{"dataset":"mnist","model":"m + detector (adaptive attack)","defense":"detector","adaptive":true,"attack":{spec},"targeted":false,"images":10,"success_rate":1.0,"mean_l2":2.25,"median_l2":2.0,"mean_linf":0.1,"rounded_success_rate":0.9,"seconds":2.0}}"#);
    std::fs::write(&f, format!("{ok}\n{none}\n{adaptive}\n")).unwrap();
    let (ok_run, out, err) = run(&["report", f.to_str().unwrap()]);
    assert!(ok_run, "{err}");
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("| mnist | detector | FGSM eps=0.1 | untargeted | 10 | 100% | 2.250 | 1.500 | +50% | - | - |"), "{out}");
    // With its parts attacked too, the ensemble is set against the strongest of them.
    let part = |d: &str, l2: f64| adaptive.replace("\"detector\"", &format!("\"{d}\"")).replace("2.25", &l2.to_string());
    std::fs::write(&f, format!("{ok}\n{}\n{}\n{adaptive}\n", part("bit-depth", 1.8), part("median", 2.0))).unwrap();
    let (ok_run, out, err) = run(&["report", f.to_str().unwrap()]);
    assert!(ok_run, "{err}");
    let last = out.lines().last().unwrap();
    assert!(last.contains("| 2.250 | 1.500 | +50% | 2.000 (median) | +12% |"), "{out}");
    std::fs::write(&f, "{not json\n").unwrap();
    let (ok_run, _, err) = run(&["report", f.to_str().unwrap()]);
    assert!(!ok_run && err.contains("r.jsonl:1: not an attack record"), "{err}");
}

fn run_owned(args: &[String]) -> (bool, String, String) {
    run(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

/// A small MNIST in IDX files: class c is a bright bar at row 2c + 4.
fn tiny_mnist(dir: &Path, train: usize, test: usize) {
    for (images, labels, n) in [("train-images-idx3-ubyte", "train-labels-idx1-ubyte", train), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", test)] {
        let mut px = Vec::new();
        let mut ls = Vec::new();
        for i in 0..n {
            let c = i % 10;
            ls.push(c as u8);
            let mut img = vec![0u8; 784];
            img[(2 * c + 4) * 28 + 4..(2 * c + 4) * 28 + 24].fill(255);
            px.extend(img);
        }
        let mut f = Vec::new();
        for x in [2051u32, n as u32, 28, 28] {
            f.extend(x.to_be_bytes());
        }
        f.extend(px);
        std::fs::write(dir.join(images), f).unwrap();
        let mut f = Vec::new();
        for x in [2049u32, n as u32] {
            f.extend(x.to_be_bytes());
        }
        f.extend(ls);
        std::fs::write(dir.join(labels), f).unwrap();
    }
}

#[test]
fn train_with_weight_averaging_publishes_the_mean() {
    let dir = tmp("train");
    let data = dir.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    tiny_mnist(&data, 64, 20);
    let out = dir.join("models");
    let ckpt = dir.join("run.ckpt");
    let args = |epochs: &str, from: &str| -> Vec<String> {
        let mut a: Vec<String> = ["train", "mnist", "--data", data.to_str().unwrap(), "--batch-size", "32", "--epochs", epochs, "--models", out.to_str().unwrap(), "--checkpoint", ckpt.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
        if !from.is_empty() {
            a.extend(["--average-from".to_string(), from.to_string()]);
        }
        a
    };
    // Averaging asked for beyond the run's end, then for epochs already done: clear refusals.
    let (ok, _, err) = run_owned(&args("2", "2"));
    assert!(!ok && err.contains("--average-from 2: the run ends after epoch 2") && !err.contains("panicked"), "{err}");
    let (ok, _, err) = run_owned(&args("1", ""));
    assert!(ok, "{err}");
    let (ok, _, err) = run_owned(&args("3", "0"));
    assert!(!ok && err.contains("weights after them are gone") && !err.contains("panicked"), "{err}");
    // Turned on at resume: epochs 2-3 are averaged, and the manifest says so.
    let (ok, _, err) = run_owned(&args("3", "1"));
    assert!(ok, "{err}");
    assert!(err.contains("after epoch 1: weight averaging on") && err.contains("mean of the weights after epochs 2-3"), "{err}");
    let manifest = advlab::models::ModelManifest::parse(&std::fs::read_to_string(out.join("mnist.json")).unwrap()).unwrap();
    let last = manifest.training.changes.last().unwrap();
    assert!(last.starts_with("published: the mean of the weights after epochs 2-3"), "{:?}", manifest.training.changes);
    let log = std::fs::read_to_string(dir.join("mnist-train.log")).unwrap();
    assert!(log.contains("published") && log.contains("mean of the weights after epochs 2-3"), "{log}");
}
