//! Feature squeezing (Xu, Evans & Qi, 2018) as a preprocessing defense and as a detector, and
//! the adaptive attacks of He et al. (2017) against both.

use crate::data::Dataset;
use crate::inference::{self, argmax_rows, read_f32};
use crate::models::{Classifier, DatasetKind};
use crate::target::Detector;
use crate::squeezers::Squeezer;
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// The detector's configuration for a data set: the squeezers and the threshold on the largest
/// L1 distance between softmax outputs, chosen so that 5% of benign held-out images are flagged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SqueezeConfig {
    pub dataset: DatasetKind,
    pub squeezers: Vec<Squeezer>,
    pub threshold: f32,
    /// Fraction of benign held-out images flagged at this threshold, and how many were used.
    pub false_positive_rate: f64,
    pub calibration_images: usize,
    /// The squeezer each preprocessing defense uses.
    pub bit_depth: Squeezer,
    pub median: Squeezer,
    /// sha256 of the weights the threshold was calibrated on: a retrained model moves the
    /// benign scores, so its old threshold would flag the wrong fraction.
    pub model_sha256: String,
}

impl SqueezeConfig {
    /// Refuses a configuration calibrated on other weights than `model_sha256`.
    pub fn check_model(&self, model_sha256: &str) -> Result<(), String> {
        if self.model_sha256 == model_sha256 {
            Ok(())
        } else {
            Err(format!(
                "the {} feature-squeezing threshold was calibrated on another model (weights {}, loaded {}); recalibrate it: lab defend {}",
                self.dataset.name(), short(&self.model_sha256), short(model_sha256), self.dataset.name()
            ))
        }
    }

    /// The squeezers Xu et al. use per data set (MNIST: 1-bit depth and 2x2 median; CIFAR-10:
    /// 5-bit depth, 2x2 median, non-local means omitted) and He et al.'s preprocessing
    /// defenses (MNIST 1 bit / 3x3 median, CIFAR-10 3 bits / 2x2 median).
    pub fn squeezers_for(dataset: DatasetKind) -> (Vec<Squeezer>, Squeezer, Squeezer) {
        match dataset {
            DatasetKind::Mnist => (
                vec![Squeezer::BitDepth { bits: 1 }, Squeezer::Median { width: 2, height: 2 }],
                Squeezer::BitDepth { bits: 1 },
                Squeezer::Median { width: 3, height: 3 },
            ),
            DatasetKind::Cifar10 => (
                vec![Squeezer::BitDepth { bits: 5 }, Squeezer::Median { width: 2, height: 2 }],
                Squeezer::BitDepth { bits: 3 },
                Squeezer::Median { width: 2, height: 2 },
            ),
        }
    }
}

fn short(sha: &str) -> &str {
    if sha.is_empty() { "unrecorded" } else { &sha[..sha.len().min(12)] }
}

/// Per-image L1 distance between the probabilities `p` of the original and the softmax of a
/// squeezed view's logits: [n, 1].
fn l1_to(p: Tensor<2>, squeezed_logits: Tensor<2>) -> Tensor<2> {
    (p - softmax(squeezed_logits, 1)).abs().sum_dim(1)
}

/// Per-image L1 distance between the softmax of `x` and of each squeezed `x`: [n, k].
fn l1_distances(model: &Classifier, x: Tensor<4>, squeezers: &[Squeezer], for_gradient: bool) -> Tensor<2> {
    let p = softmax(model.forward(x.clone()), 1);
    let cols: Vec<Tensor<2>> = squeezers
        .iter()
        .map(|s| {
            let sx = if for_gradient { s.apply_for_gradient(x.clone()) } else { s.apply(x.clone()) };
            l1_to(p.clone(), model.forward(sx))
        })
        .collect();
    Tensor::cat(cols, 1)
}

/// Xu et al.'s score: the largest L1 distance over the squeezers, per image.
pub fn detector_score(model: &Classifier, x: Tensor<4>, squeezers: &[Squeezer]) -> Tensor<1> {
    let n = x.dims()[0];
    l1_distances(model, x, squeezers, false).max_dim(1).reshape([n])
}

/// The threshold that flags `rate` of the benign scores (the (1 - rate) quantile).
pub fn threshold_for_rate(scores: &[f32], rate: f64) -> f32 {
    let mut s = scores.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = (((1.0 - rate) * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[idx]
}

/// Calibrates the detector on benign held-out images: the first half of `held` sets the
/// threshold at 5% false positives, the second half measures the rate it gives.
pub async fn calibrate(model: &Classifier, model_sha256: &str, dataset: DatasetKind, held: &Dataset, device: &Device) -> Result<SqueezeConfig, String> {
    let (squeezers, bit_depth, median) = SqueezeConfig::squeezers_for(dataset);
    let half = held.len() / 2;
    let scores = async |d: &Dataset| -> Result<Vec<f32>, String> {
        let mut out = Vec::with_capacity(d.len());
        for s in (0..d.len()).step_by(200) {
            let x = inference::dataset_tensor(d, s, (s + 200).min(d.len()), device);
            out.extend(read_f32(detector_score(model, x, &squeezers)).await?);
        }
        Ok(out)
    };
    let fit = scores(&held.slice(0, half)).await?;
    let check = scores(&held.slice(half, held.len())).await?;
    if fit.is_empty() {
        return Err("no held-out images to calibrate on".into());
    }
    let threshold = threshold_for_rate(&fit, 0.05);
    let false_positive_rate = check.iter().filter(|s| **s > threshold).count() as f64 / check.len().max(1) as f64;
    Ok(SqueezeConfig { dataset, squeezers: squeezers.clone(), threshold, false_positive_rate, calibration_images: fit.len(), bit_depth, median, model_sha256: model_sha256.into() })
}

/// One squeezed view of an image as the feature-squeezing panel shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqueezedView {
    pub name: String,
    pub predicted: usize,
    /// L1 distance between the model's softmax on the image and on this view.
    pub l1: f32,
    /// Part of the detector's score.
    pub in_detector: bool,
    /// The preprocessing defense it is (`bit-depth`, `median`), if any.
    pub preprocessing: Option<&'static str>,
    #[serde(skip)]
    pub image: Vec<f32>,
    #[serde(skip)]
    pub probs: Vec<f32>,
}

/// What the feature-squeezing defenses see for one image: each squeezed view, the detector's
/// score against its threshold, and the verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqueezeReport {
    pub threshold: f32,
    pub score: f32,
    pub flagged: bool,
    pub predicted: usize,
    #[serde(skip)]
    pub probs: Vec<f32>,
    pub views: Vec<SqueezedView>,
}

/// The report for one image `x` ([1, c, h, w]).
pub async fn report(model: &Classifier, config: &SqueezeConfig, x: Tensor<4>) -> Result<SqueezeReport, String> {
    let probs = inference::probabilities(model, x.clone()).await?;
    let classes = probs.len();
    let score = read_f32(detector_score(model, x.clone(), &config.squeezers)).await?[0];
    let mut squeezers: Vec<Squeezer> = config.squeezers.clone();
    for s in [config.bit_depth, config.median] {
        if !squeezers.contains(&s) {
            squeezers.push(s);
        }
    }
    let mut views = Vec::with_capacity(squeezers.len());
    for s in squeezers {
        let sx = s.apply(x.clone());
        let image = read_f32(sx.clone()).await?;
        let q = inference::probabilities(model, sx).await?;
        views.push(SqueezedView {
            name: s.name(),
            predicted: argmax_rows(&q, classes)[0],
            l1: probs.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum(),
            in_detector: config.squeezers.contains(&s),
            preprocessing: if s == config.bit_depth { Some("bit-depth") } else if s == config.median { Some("median") } else { None },
            image,
            probs: q,
        });
    }
    Ok(SqueezeReport { threshold: config.threshold, score, flagged: score > config.threshold, predicted: argmax_rows(&probs, classes)[0], probs, views })
}

/// Xu et al.'s detector: flags an image when the largest L1 distance between the model's
/// softmax on it and on one of its squeezed views exceeds the threshold.
pub struct SqueezeDetector<'a> {
    pub squeezers: Vec<Squeezer>,
    pub threshold: f32,
    /// Frozen, on an autodiff device (the adaptive penalty).
    pub grad_model: &'a Classifier,
    pub model: &'a Classifier,
}

impl SqueezeDetector<'_> {
    /// Zero while an L1 distance is a little under the threshold (so that rounding noise does not
    /// push it back over), growing linearly above.
    /// Summed over the squeezers: `l1` is [n, k], the result [n].
    fn hinge(&self, l1: Tensor<2>) -> Tensor<1> {
        l1.sub_scalar(0.8 * self.threshold).clamp_min(0.0).mul_scalar(10.0).sum_dim(1).squeeze_dim(1)
    }

    /// The adaptive attack's detector penalty alone (the sum of the hinges), per image.
    pub fn penalty(&self, x: Tensor<4>) -> Tensor<1> {
        self.hinge(l1_distances(self.grad_model, x, &self.squeezers, true))
    }
}

impl Detector for SqueezeDetector<'_> {
    fn name(&self) -> String {
        format!("feature squeezing ({})", self.squeezers.iter().map(|s| s.name()).collect::<Vec<_>>().join(" + "))
    }

    fn threshold(&self) -> f32 {
        self.threshold
    }

    fn score(&self, x: Tensor<4>) -> Tensor<1> {
        detector_score(self.model, x, &self.squeezers)
    }

    /// He et al.: the squeezed views must be fooled as well as the original (then, all being
    /// confident in the same class, their softmaxes agree), plus a hinge on each L1 distance
    /// just under the threshold; differentiated through the squeezers (the rounding by its
    /// substitute).
    fn adaptive_loss(&self, x: Tensor<4>, logits: Option<Tensor<2>>, term: &dyn Fn(Tensor<2>) -> Tensor<1>) -> Tensor<1> {
        let logits = logits.unwrap_or_else(|| self.grad_model.forward(x.clone()));
        let p = softmax(logits, 1);
        let mut loss: Option<Tensor<1>> = None;
        let mut l1 = Vec::with_capacity(self.squeezers.len());
        for s in &self.squeezers {
            let squeezed = self.grad_model.forward(s.apply_for_gradient(x.clone()));
            l1.push(l1_to(p.clone(), squeezed.clone()));
            let t = term(squeezed);
            loss = Some(match loss { Some(l) => l + t, None => t });
        }
        let hinge = self.hinge(Tensor::cat(l1, 1));
        match loss { Some(l) => l + hinge, None => hinge }
    }
}
