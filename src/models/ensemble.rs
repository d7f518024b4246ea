//! Several classifiers of the same architecture run as one computation (case study 2: the
//! generalist and the specialists of Abbasi & Gagné's Specialists+1, as He et al. attack it).
//! The weights of K members are stacked: the first convolution concatenates their output
//! channels (the input is shared), the later ones are grouped convolutions with K groups (group
//! k reads only member k's channels), the dense layers are one batched matmul over a leading K
//! dimension. One forward of the stack costs one set of kernel launches, not K (what matters on
//! WebGPU, where each launch has a fixed cost).
//!
//! A specialist is a 10-output classifier whose logits for classes outside its set are pinned
//! ([`Classifier::pin_outside`]): every member then has the same shape and stacks, and its
//! softmax is exactly that of a classifier with as many outputs as its set has classes.

use super::manifest::{sha256_hex, ModelError};
use super::{Classifier, ClassifierConfig, DatasetKind};
use burn::module::Param;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// The logit of a class outside a specialist's set: exp(-1e4) is exactly 0 in f32, so the class
/// gets probability 0, the cross-entropy gradient of its column is exactly 0 (Adam leaves a
/// pinned column where it is) and the member can never predict it.
pub const PINNED_LOGIT: f32 = -1e4;

impl Classifier {
    /// Pins the logits of every class not in `set`: their fc3 weights 0, their bias
    /// [`PINNED_LOGIT`]. Idempotent; parameters keep their ids (the optimizer state stays valid).
    pub fn pin_outside(mut self, set: &[usize]) -> Classifier {
        let classes = self.fc3.weight.val().dims()[1];
        let keep: Vec<f32> = (0..classes).map(|c| if set.contains(&c) { 1.0 } else { 0.0 }).collect();
        let device = self.fc3.weight.val().device();
        let keep = Tensor::<1>::from_data(TensorData::new(keep, [classes]), &device);
        let k2 = keep.clone().reshape([1, classes]);
        self.fc3.weight = self.fc3.weight.map(|w| w * k2);
        self.fc3.bias = self.fc3.bias.map(|b| {
            b.map(|b| b * keep.clone() + keep.clone().neg().add_scalar(1.0).mul_scalar(PINNED_LOGIT))
        });
        self
    }
}

/// K classifiers of one architecture, stacked (see the module comment).
#[derive(Module, Debug)]
pub struct Ensemble {
    /// [K*a, c, 3, 3]: output channels of member k at k*a..(k+1)*a.
    conv1_weight: Param<Tensor<4>>,
    conv1_bias: Param<Tensor<1>>,
    /// [K*a, a, 3, 3], grouped: group k maps member k's channels to member k's.
    conv2_weight: Param<Tensor<4>>,
    conv2_bias: Param<Tensor<1>>,
    conv3_weight: Param<Tensor<4>>,
    conv3_bias: Param<Tensor<1>>,
    conv4_weight: Param<Tensor<4>>,
    conv4_bias: Param<Tensor<1>>,
    /// [K, in, out] and [K, 1, out] (burn's Linear is x W + b with W [in, out]).
    fc1_weight: Param<Tensor<3>>,
    fc1_bias: Param<Tensor<3>>,
    fc2_weight: Param<Tensor<3>>,
    fc2_bias: Param<Tensor<3>>,
    fc3_weight: Param<Tensor<3>>,
    fc3_bias: Param<Tensor<3>>,
    pool: MaxPool2d,
}

/// A new parameter from a computed tensor (detached: on the autodiff device a parameter must
/// be a leaf).
fn p<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t.detach())
}

impl Ensemble {
    /// Stacks classifiers (in this order: member k is `members[k]`).
    pub fn stack(members: &[&Classifier]) -> Ensemble {
        assert!(!members.is_empty(), "an ensemble has members");
        let cat4 = |f: &dyn Fn(&Classifier) -> Tensor<4>| Tensor::cat(members.iter().map(|m| f(m)).collect(), 0);
        let cat1 = |f: &dyn Fn(&Classifier) -> Tensor<1>| Tensor::cat(members.iter().map(|m| f(m)).collect(), 0);
        let w3 = |f: &dyn Fn(&Classifier) -> Tensor<2>| Tensor::cat(members.iter().map(|m| f(m).unsqueeze_dim::<3>(0)).collect(), 0);
        let b3 = |f: &dyn Fn(&Classifier) -> Tensor<1>| Tensor::cat(members.iter().map(|m| f(m).unsqueeze_dim::<2>(0).unsqueeze_dim::<3>(0)).collect(), 0);
        let bias = |c: &burn::nn::conv::Conv2d| c.bias.as_ref().expect("the C&W convolutions have biases").val();
        let lbias = |l: &burn::nn::Linear| l.bias.as_ref().expect("the C&W dense layers have biases").val();
        Ensemble {
            conv1_weight: p(cat4(&|m| m.conv1.weight.val())),
            conv1_bias: p(cat1(&|m| bias(&m.conv1))),
            conv2_weight: p(cat4(&|m| m.conv2.weight.val())),
            conv2_bias: p(cat1(&|m| bias(&m.conv2))),
            conv3_weight: p(cat4(&|m| m.conv3.weight.val())),
            conv3_bias: p(cat1(&|m| bias(&m.conv3))),
            conv4_weight: p(cat4(&|m| m.conv4.weight.val())),
            conv4_bias: p(cat1(&|m| bias(&m.conv4))),
            fc1_weight: p(w3(&|m| m.fc1.weight.val())),
            fc1_bias: p(b3(&|m| lbias(&m.fc1))),
            fc2_weight: p(w3(&|m| m.fc2.weight.val())),
            fc2_bias: p(b3(&|m| lbias(&m.fc2))),
            fc3_weight: p(w3(&|m| m.fc3.weight.val())),
            fc3_bias: p(b3(&|m| lbias(&m.fc3))),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }

    /// The members of `parts`, one ensemble after the other.
    pub fn cat(parts: &[&Ensemble]) -> Ensemble {
        macro_rules! join {
            ($f:ident) => {
                p(Tensor::cat(parts.iter().map(|e| e.$f.val()).collect(), 0))
            };
        }
        Ensemble {
            conv1_weight: join!(conv1_weight),
            conv1_bias: join!(conv1_bias),
            conv2_weight: join!(conv2_weight),
            conv2_bias: join!(conv2_bias),
            conv3_weight: join!(conv3_weight),
            conv3_bias: join!(conv3_bias),
            conv4_weight: join!(conv4_weight),
            conv4_bias: join!(conv4_bias),
            fc1_weight: join!(fc1_weight),
            fc1_bias: join!(fc1_bias),
            fc2_weight: join!(fc2_weight),
            fc2_bias: join!(fc2_bias),
            fc3_weight: join!(fc3_weight),
            fc3_bias: join!(fc3_bias),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }

    /// An ensemble of `members` copies of the architecture, with untrained weights (the shape
    /// that weights are decoded into).
    pub fn init(config: &ClassifierConfig, members: usize, device: &Device) -> Ensemble {
        let one = config.init(device);
        let refs: Vec<&Classifier> = (0..members).map(|_| &one).collect();
        Ensemble::stack(&refs)
    }

    pub fn members(&self) -> usize {
        self.fc1_weight.val().dims()[0]
    }

    /// Logits of every member: [K, n, classes]. Input pixels in [0, 1], shared by all members.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let k = self.members();
        let n = x.dims()[0];
        let opts = |groups| ConvOptions::new([1, 1], [0, 0], [1, 1], groups);
        let x = relu(conv2d(x, self.conv1_weight.val(), Some(self.conv1_bias.val()), opts(1)));
        let x = relu(conv2d(x, self.conv2_weight.val(), Some(self.conv2_bias.val()), opts(k)));
        let x = self.pool.forward(x);
        let x = relu(conv2d(x, self.conv3_weight.val(), Some(self.conv3_bias.val()), opts(k)));
        let x = relu(conv2d(x, self.conv4_weight.val(), Some(self.conv4_bias.val()), opts(k)));
        let x = self.pool.forward(x); // [n, K*b, side, side], member-major channels
        let [_, kb, side, _] = x.dims();
        // Each member's block flattened as Classifier::features flattens it (channel, row, column).
        let x = x.reshape([n, k, kb / k * side * side]).swap_dims(0, 1); // [K, n, features]
        let x = relu(x.matmul(self.fc1_weight.val()) + self.fc1_bias.val());
        let x = relu(x.matmul(self.fc2_weight.val()) + self.fc2_bias.val());
        x.matmul(self.fc3_weight.val()) + self.fc3_bias.val()
    }
}

/// Safetensors bytes of an ensemble (what `models/<dataset>-specialists.safetensors` holds).
pub fn encode_ensemble(ensemble: &Ensemble) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None);
    ensemble.save_into(&mut store).map_err(|e| ModelError::Weights(e.to_string()))?;
    store.get_bytes().map_err(|e| ModelError::Weights(e.to_string()))
}

/// Decodes an ensemble of `members` members, refusing missing, unexpected or misshapen tensors.
pub fn decode_ensemble(config: &ClassifierConfig, members: usize, bytes: &[u8], device: &Device) -> Result<Ensemble, ModelError> {
    if bytes.len() < 8 || u64::from_le_bytes(bytes[..8].try_into().unwrap()) > (bytes.len() - 8) as u64 {
        return Err(ModelError::Weights("not a safetensors file or truncated".into()));
    }
    let mut ensemble = Ensemble::init(config, members, device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = ensemble.load_from(&mut store).map_err(|e| ModelError::Weights(e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(ModelError::Weights(format!("the ensemble's tensors do not fit {members} members: {result}")));
    }
    Ok(ensemble)
}

/// One specialist as measured after its training.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpecialistRecord {
    /// The classes it tells apart (its other logits are pinned).
    pub classes: Vec<usize>,
    /// Accuracy on the test images of its classes, and how many there are.
    pub test_accuracy: f64,
    pub test_images: usize,
    /// Training images of its classes it was fine-tuned on (per epoch).
    pub training_images: usize,
    pub epochs: usize,
    pub seconds: f64,
}

/// The FGSM confusion matrix the specialists' sets come from (Abbasi & Gagné).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfusionRecord {
    /// `matrix[true][adversarial]`: FGSM examples of training images of class `true` that the
    /// generalist gives class `adversarial` (the diagonal: those it still gets right).
    pub matrix: Vec<Vec<u64>>,
    pub fgsm_epsilon: f32,
    /// Training images attacked.
    pub images: usize,
    /// Share of a class's confusions its set must cover.
    pub coverage: f64,
}

/// The calibrated vote-confidence detector (He et al.'s description of Specialists+1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VoteThreshold {
    /// Flagged when the mean confidence of the winner's voters is below this.
    pub min_confidence: f32,
    /// Fraction of other benign held-out images flagged, and how many set the threshold.
    pub false_positive_rate: f64,
    pub calibration_images: usize,
}

/// The manifest beside the specialists' stacked weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnsembleManifest {
    pub dataset: DatasetKind,
    /// The generalist (member 0 of the ensemble; its weights are the data set's model file).
    pub generalist: String,
    pub generalist_sha256: String,
    /// The specialists' stacked weights, beside the manifest.
    pub weights: String,
    pub sha256: String,
    pub bytes: usize,
    pub specialists: Vec<SpecialistRecord>,
    pub confusion: ConfusionRecord,
    /// How the specialists were trained.
    pub training: String,
    pub seconds: f64,
    /// Absent until calibrated.
    #[serde(default)]
    pub detector: Option<VoteThreshold>,
    /// Accuracy of the vote on the whole test set, when measured.
    #[serde(default)]
    pub vote_test_accuracy: Option<f64>,
    /// The stacked forward's cost against the generalist's alone, when measured.
    #[serde(default)]
    pub timing: Option<EnsembleTiming>,
}

/// Milliseconds per call (median of several) on the machine that trained the ensemble.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnsembleTiming {
    pub device: String,
    pub batch: usize,
    pub members: usize,
    pub generalist_forward_ms: f64,
    pub ensemble_forward_ms: f64,
    /// Forward + backward to the input (an attack step's network work).
    pub generalist_step_ms: f64,
    pub ensemble_step_ms: f64,
}

impl EnsembleManifest {
    /// Class sets of every member, the generalist (all classes) first.
    pub fn member_sets(&self, classes: usize) -> Vec<Vec<usize>> {
        std::iter::once((0..classes).collect()).chain(self.specialists.iter().map(|s| s.classes.clone())).collect()
    }
}

/// Decodes the specialists' weights (checked against the manifest) and puts the generalist in
/// front: the ensemble the vote runs, on `device`.
pub fn load_ensemble(manifest: &EnsembleManifest, bytes: &[u8], generalist: &Classifier, device: &Device) -> Result<Ensemble, ModelError> {
    let found = sha256_hex(bytes);
    if found != manifest.sha256 {
        return Err(ModelError::HashMismatch { expected: manifest.sha256.clone(), found });
    }
    let config = ClassifierConfig::for_dataset(manifest.dataset);
    let specialists = decode_ensemble(&config, manifest.specialists.len(), bytes, device)?;
    Ok(Ensemble::cat(&[&Ensemble::stack(&[generalist]), &specialists]))
}
