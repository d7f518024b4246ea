//! Training case study 3's detectors (`lab train detector <gong|metzen|feinman>`) affordably on
//! 2 CPU cores, all from the training split (the test images that evaluations use never enter):
//!
//! - training images `[0, images)` are attacked on the committed classifier (untargeted CW-L2
//!   with one round of few steps, and FGSM); the examples that fool it (of images it classifies
//!   correctly) are the adversarial class, their originals the benign class. The last
//!   `validation` of them are held out of detector training to measure detection;
//! - training images `[images, images + held_out)` are benign held-out images: the first half
//!   sets each threshold at 5% false positives, the second half measures the rate it gives;
//! - Feinman's kernel density sample is drawn from the images after those, per class.
//!
//! Resumable: the adversarial examples are cached per chunk of 100 images under
//! `models/checkpoints/<dataset>-detectors/` (regenerated when missing, never committed), and
//! the Gong and Metzen networks are saved there after every epoch (a resumed run restarts Adam's
//! moments, which the log says).

use super::cosine_lr;
use crate::attacks::cw::{cw_l2, CwParams};
use crate::attacks::gradient::{fgsm, FgsmParams};
use crate::attacks::{Goal, ModelTarget, Silent};
use crate::data::Dataset;
use crate::inference::{self, read_f32};
use crate::models::detectors::{decode_module, encode_module, MetzenLayer, MetzenNet};
use crate::models::manifest::sha256_hex;
use crate::models::Classifier;
use crate::target::Detector;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use super::detector_publish::{calibrate, publish, train_detector, Calibration};

/// Everything that decides what the detectors are trained on and how.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorOptions {
    /// Training images attacked (the first ones of the split).
    pub images: usize,
    /// Of those, the last ones held out of detector training (detection is measured on their
    /// adversarial examples).
    pub validation: usize,
    /// Benign training images after them: half set the thresholds, half measure false positives.
    pub held_out: usize,
    /// CW-L2: Adam steps, one round at this constant, this learning rate (fewer steps than an
    /// evaluation's 1000 x 9: affordable, and closer to the threshold examples detectors must see).
    pub cw_steps: usize,
    pub cw_const: f64,
    pub cw_learning_rate: f64,
    pub fgsm_epsilon: f32,
    /// Gong and Metzen: epochs, batch, Adam's peak learning rate (cosine decay to 0).
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Feinman: kernel bandwidth, images per class in the published sample, and the sizes whose
    /// effect on detection is measured.
    pub bandwidth: f32,
    pub per_class: usize,
    pub per_class_tried: Vec<usize>,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        // The committed detectors' run (1,000 attacked images fit a session on 2 shared cores;
        // the 2,000 did not).
        DetectorOptions {
            images: 1000,
            validation: 200,
            held_out: 1000,
            cw_steps: 50,
            cw_const: 0.1,
            cw_learning_rate: 0.01,
            fgsm_epsilon: 0.0156,
            epochs: 20,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 1,
            bandwidth: 0.26,
            per_class: 100,
            per_class_tried: vec![25, 50, 100, 200, 400],
        }
    }
}

impl DetectorOptions {
    /// The training images whose examples train Gong's and Metzen's networks.
    pub fn fit_range(&self) -> std::ops::Range<usize> {
        0..self.images - self.validation
    }
    pub fn validation_range(&self) -> std::ops::Range<usize> {
        self.images - self.validation..self.images
    }
    /// Benign held-out: the threshold's half, then the false-positive half.
    pub fn threshold_range(&self) -> std::ops::Range<usize> {
        self.images..self.images + self.held_out / 2
    }
    pub fn false_positive_range(&self) -> std::ops::Range<usize> {
        self.images + self.held_out / 2..self.images + self.held_out
    }
    /// Where the KDE sample is drawn from.
    pub fn kde_start(&self) -> usize {
        self.images + self.held_out
    }
}

/// The attacks' examples of training images `[0, images)`, by image.
pub struct Adversarial {
    pub shape: crate::data::ImageShape,
    /// Whether the classifier gets the benign image right (only those count).
    pub clean_correct: Vec<bool>,
    pub cw: Vec<f32>,
    pub cw_fooled: Vec<bool>,
    pub fgsm: Vec<f32>,
    pub fgsm_fooled: Vec<bool>,
    pub seconds: f64,
}

impl Adversarial {
    /// Pixels of the examples of `range` that fool the classifier (CW, then FGSM), and how
    /// many of each.
    pub fn examples(&self, range: std::ops::Range<usize>) -> (Vec<f32>, usize, usize) {
        let (pixels, images, cw) = self.examples_of(range);
        let fgsm = images.len() - cw;
        (pixels, cw, fgsm)
    }

    /// [`Self::examples`], with the training image each example was made from.
    pub fn examples_of(&self, range: std::ops::Range<usize>) -> (Vec<f32>, Vec<usize>, usize) {
        let n = self.shape.len();
        let (mut out, mut images) = (Vec::new(), Vec::new());
        for (pixels, fooled) in [(&self.cw, &self.cw_fooled), (&self.fgsm, &self.fgsm_fooled)] {
            for i in range.clone() {
                if self.clean_correct[i] && fooled[i] {
                    out.extend_from_slice(&pixels[i * n..(i + 1) * n]);
                    images.push(i);
                }
            }
        }
        let cw = range.filter(|&i| self.clean_correct[i] && self.cw_fooled[i]).count();
        (out, images, cw)
    }

    /// Success rates over the images the classifier gets right.
    pub fn success_rates(&self) -> (f64, f64) {
        let ok = self.clean_correct.iter().filter(|c| **c).count().max(1) as f64;
        let rate = |f: &[bool]| f.iter().zip(&self.clean_correct).filter(|(a, b)| **a && **b).count() as f64 / ok;
        (rate(&self.cw_fooled), rate(&self.fgsm_fooled))
    }
}

/// The cache of one chunk: what it was made with, then pixels and flags.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ChunkHeader {
    classifier_sha256: String,
    start: usize,
    count: usize,
    cw_steps: usize,
    cw_const: f64,
    cw_learning_rate: f64,
    fgsm_epsilon: f32,
    seconds: f64,
}

pub const CHUNK: usize = 100;

fn write_chunk(path: &Path, header: &ChunkHeader, parts: [&[f32]; 2], flags: [&[bool]; 3]) -> Result<(), String> {
    let head = serde_json::to_vec(header).unwrap();
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend(&head);
    for p in parts {
        out.extend(p.iter().flat_map(|v| v.to_le_bytes()));
    }
    for f in flags {
        out.extend(f.iter().map(|&b| b as u8));
    }
    write_atomic(path, &out)
}

/// A cached chunk, if it exists and was made with the same settings on the same weights.
fn read_chunk(path: &Path, want: &ChunkHeader, plane: usize) -> Option<(ChunkHeader, [Vec<f32>; 2], [Vec<bool>; 3])> {
    let bytes = std::fs::read(path).ok()?;
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: ChunkHeader = serde_json::from_slice(bytes.get(8..8 + len)?).ok()?;
    let same = ChunkHeader { seconds: header.seconds, ..want.clone() };
    if header != same {
        return None;
    }
    let n = header.count;
    let body = bytes.get(8 + len..)?;
    if body.len() != 2 * n * plane * 4 + 3 * n {
        return None;
    }
    let f = |s: &[u8]| s.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<f32>>();
    let (a, rest) = body.split_at(n * plane * 4);
    let (b, flags) = rest.split_at(n * plane * 4);
    let g = |i: usize| flags[i * n..(i + 1) * n].iter().map(|&v| v != 0).collect::<Vec<bool>>();
    Some((header, [f(a), f(b)], [g(0), g(1), g(2)]))
}

/// Makes (or reads from the cache) the CW and FGSM examples of training images `[0, images)`.
pub fn adversarial_examples(model: &Classifier, grad_model: &Classifier, sha: &str, train: &Dataset, o: &DetectorOptions, cache: &Path, device: &Device, log: &mut dyn FnMut(&str)) -> Result<Adversarial, String> {
    let plane = train.shape.len();
    let classes = model.forward(inference::dataset_tensor(train, 0, 1, device)).dims()[1];
    let target = ModelTarget { grad_model, model };
    let cw = CwParams { steps: o.cw_steps, binary_search_steps: 1, initial_const: o.cw_const, learning_rate: o.cw_learning_rate, ..CwParams::default() };
    let mut all = Adversarial { shape: train.shape, clean_correct: vec![], cw: vec![], cw_fooled: vec![], fgsm: vec![], fgsm_fooled: vec![], seconds: 0.0 };
    for start in (0..o.images).step_by(CHUNK) {
        let end = (start + CHUNK).min(o.images);
        let want = ChunkHeader { classifier_sha256: sha.into(), start, count: end - start, cw_steps: o.cw_steps, cw_const: o.cw_const, cw_learning_rate: o.cw_learning_rate, fgsm_epsilon: o.fgsm_epsilon, seconds: 0.0 };
        let path = cache.join(format!("adv-{start:05}.bin"));
        let (header, [c, f], [clean, cf, ff]) = match read_chunk(&path, &want, plane) {
            Some(chunk) => chunk,
            None => {
                let t = Instant::now();
                let x = inference::dataset_tensor(train, start, end, device);
                let labels: Vec<usize> = train.labels[start..end].iter().map(|&l| l as usize).collect();
                let goal = Goal::untargeted(labels.clone(), classes);
                let clean = inference::argmax_rows(&pollster::block_on(read_f32(model.forward(x.clone())))?, classes);
                let clean: Vec<bool> = clean.iter().zip(&labels).map(|(p, l)| p == l).collect();
                let c = pollster::block_on(cw_l2(&target, x.clone(), &goal, &cw, &mut Silent))?;
                let f = pollster::block_on(fgsm(&target, x, &goal, &FgsmParams { epsilon: o.fgsm_epsilon }, &mut Silent))?;
                let header = ChunkHeader { seconds: t.elapsed().as_secs_f64(), ..want };
                write_chunk(&path, &header, [&c.images, &f.images], [&clean, &c.success, &f.success])?;
                log(&format!(
                    "adversarial examples of training images {start}..{end}: CW fooled {}, FGSM {} of {} ({:.0} s)",
                    c.success.iter().zip(&clean).filter(|(a, b)| **a && **b).count(),
                    f.success.iter().zip(&clean).filter(|(a, b)| **a && **b).count(),
                    clean.iter().filter(|c| **c).count(),
                    header.seconds
                ));
                (header, [c.images, f.images], [clean, c.success, f.success])
            }
        };
        all.seconds += header.seconds;
        all.clean_correct.extend(clean);
        all.cw.extend(c);
        all.cw_fooled.extend(cf);
        all.fgsm.extend(f);
        all.fgsm_fooled.extend(ff);
    }
    Ok(all)
}

/// Benign pixels of `range` of the training split, as floats.
pub fn benign(train: &Dataset, range: std::ops::Range<usize>) -> Vec<f32> {
    range.flat_map(|i| train.image_f32(i)).collect()
}

/// A detector's scores of many images, in batches.
pub fn scores(detector: &dyn Detector, pixels: &[f32], shape: crate::data::ImageShape, device: &Device) -> Result<Vec<f32>, String> {
    let n = shape.len();
    let mut out = Vec::with_capacity(pixels.len() / n);
    for chunk in pixels.chunks(200 * n) {
        out.extend(pollster::block_on(read_f32(detector.score(inference::to_tensor(chunk, shape, device))))?);
    }
    Ok(out)
}

/// What a binary detector network is trained on: benign images (label 0) then adversarial ones
/// (label 1), pixels as floats, each with the training image it comes from.
pub struct BinaryData {
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
    /// The source image of each example: an image's benign and adversarial versions share a
    /// batch, so that each step sees what the attack changed (on a few thousand examples the
    /// networks otherwise stay at the class prior).
    pub groups: Vec<usize>,
    pub shape: crate::data::ImageShape,
}

impl BinaryData {
    pub fn new(benign: Vec<f32>, benign_images: &[usize], adversarial: &[f32], adversarial_images: &[usize], shape: crate::data::ImageShape) -> Self {
        let (nb, na) = (benign.len() / shape.len(), adversarial.len() / shape.len());
        assert_eq!((nb, na), (benign_images.len(), adversarial_images.len()), "one source image per example");
        let mut pixels = benign;
        pixels.extend_from_slice(adversarial);
        let labels = std::iter::repeat_n(0u8, nb).chain(std::iter::repeat_n(1u8, na)).collect();
        BinaryData { pixels, labels, groups: benign_images.iter().chain(adversarial_images).copied().collect(), shape }
    }

    /// The examples in batches of about `batch` examples, whole source images at a time, in an
    /// order shuffled by `rng`.
    pub fn batches(&self, batch: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
        let mut by_image: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
        for (k, &g) in self.groups.iter().enumerate() {
            by_image.entry(g).or_default().push(k);
        }
        let mut groups: Vec<Vec<usize>> = by_image.into_values().collect();
        groups.shuffle(rng);
        let mut out: Vec<Vec<usize>> = vec![Vec::new()];
        for g in groups {
            if out.last().unwrap().len() + g.len() > batch && !out.last().unwrap().is_empty() {
                out.push(Vec::new());
            }
            out.last_mut().unwrap().extend(g);
        }
        out
    }
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Where a network's training state lives: its weights after the last finished epoch and a
/// small JSON file (epochs done, losses, seconds).
pub struct NetCheckpoint {
    pub weights: PathBuf,
    pub state: PathBuf,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NetState {
    pub epochs_done: usize,
    pub weights_sha256: String,
    /// Mean training loss of each epoch.
    pub losses: Vec<f64>,
    pub seconds: f64,
    #[serde(default)]
    pub resumed: Vec<String>,
}

/// Trains a two-output network with Adam (cosine decay over all epochs) and cross-entropy,
/// `input` turning a batch's pixels into its input on the autodiff device; saves after every
/// epoch and resumes from the last saved one.
#[allow(clippy::too_many_arguments)]
pub fn fit<M: Module + burn::store::ModuleSnapshot + Clone>(
    mut model: M,
    forward: &dyn Fn(&M, Tensor<4>) -> Tensor<2>,
    input: &dyn Fn(Tensor<4>) -> Tensor<4>,
    data: &BinaryData,
    o: &DetectorOptions,
    ckpt: &NetCheckpoint,
    train_device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<(M, NetState), String> {
    let mut state: NetState = std::fs::read_to_string(&ckpt.state).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if state.epochs_done > 0 {
        match std::fs::read(&ckpt.weights) {
            Ok(bytes) if sha256_hex(&bytes) == state.weights_sha256 => {
                model = decode_module(model, &bytes).map_err(|e| format!("{}: {e}", ckpt.weights.display()))?;
                let note = format!("resumed after epoch {} (Adam's moments restart)", state.epochs_done);
                log(&note);
                state.resumed.push(note);
            }
            _ => {
                log(&format!("{}: missing or changed; training from the start", ckpt.weights.display()));
                state = NetState::default();
            }
        }
    }
    let mut optim = AdamConfig::new().init();
    let batches = data.batches(o.batch_size, &mut StdRng::seed_from_u64(o.seed)).len();
    let total = batches * o.epochs;
    let plane = data.shape.len();
    for epoch in state.epochs_done..o.epochs {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(o.seed.wrapping_mul(1000).wrapping_add(epoch as u64));
        let mut loss_sum = 0.0;
        for (b, idx) in data.batches(o.batch_size, &mut rng).iter().enumerate() {
            let pixels: Vec<f32> = idx.iter().flat_map(|&i| data.pixels[i * plane..(i + 1) * plane].iter().copied()).collect();
            let labels: Vec<u8> = idx.iter().map(|&i| data.labels[i]).collect();
            let x = input(inference::to_tensor(&pixels, data.shape, train_device));
            let loss = super::cross_entropy(forward(&model, x), &labels);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            loss_sum += pollster::block_on(read_f32(loss.inner()))?[0] as f64;
            model = optim.step(cosine_lr(o.learning_rate, epoch * batches + b, total), model, grads);
            if b % 20 == 0 {
                eprint!("\repoch {}/{} batch {}/{batches} loss {:.4}   ", epoch + 1, o.epochs, b + 1, loss_sum / (b + 1) as f64);
            }
        }
        eprintln!();
        let bytes = encode_module(&model).map_err(|e| e.to_string())?;
        write_atomic(&ckpt.weights, &bytes)?;
        state.epochs_done = epoch + 1;
        state.weights_sha256 = sha256_hex(&bytes);
        state.losses.push(loss_sum / batches as f64);
        state.seconds += start.elapsed().as_secs_f64();
        write_atomic(&ckpt.state, (serde_json::to_string_pretty(&state).unwrap() + "\n").as_bytes())?;
        log(&format!("epoch {}/{}: mean loss {:.4} ({:.0} s)", epoch + 1, o.epochs, state.losses[epoch], start.elapsed().as_secs_f64()));
    }
    Ok((model, state))
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Metzen et al.'s input: the frozen classifier's feature maps at `layer`, on the autodiff
/// device as a constant.
pub fn metzen_input(classifier: &Classifier, layer: MetzenLayer) -> impl Fn(Tensor<4>) -> Tensor<4> + '_ {
    move |x: Tensor<4>| layer.read(&classifier.activations(x.inner())).autodiff()
}

/// The freshly initialised subnetwork for a layer.
pub fn metzen_net(layer: MetzenLayer, config: &crate::models::ClassifierConfig, device: &Device) -> MetzenNet {
    MetzenNet::init(layer.channels(config), device)
}
