//! The trained parts of case study 3's detectors and their manifests: Gong et al.'s binary
//! classifier (the classifier's architecture with two outputs), Metzen et al.'s small
//! convolutional subnetwork on one block of the classifier's feature maps, and Feinman et al.'s
//! kernel density sample (last-hidden-layer activations of benign training images, per class).
//! Each file is checked against its manifest (sha256, shapes) when it is loaded, and each
//! manifest names the classifier weights it was trained on.

use super::manifest::{sha256_hex, ModelError};
use super::{Classifier, ClassifierConfig, DatasetKind};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::relu;

/// Which of the three detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    Gong,
    Metzen,
    Feinman,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 3] = [DetectorKind::Gong, DetectorKind::Metzen, DetectorKind::Feinman];

    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "gong" => Ok(DetectorKind::Gong),
            "metzen" => Ok(DetectorKind::Metzen),
            "feinman" => Ok(DetectorKind::Feinman),
            other => Err(format!("unknown detector '{other}' (expected gong, metzen or feinman)")),
        }
    }

    /// How systems spell it.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Gong => "gong",
            DetectorKind::Metzen => "metzen",
            DetectorKind::Feinman => "feinman",
        }
    }

    /// How the page and the tables name it.
    pub fn label(self) -> &'static str {
        match self {
            DetectorKind::Gong => "Gong et al. (binary classifier)",
            DetectorKind::Metzen => "Metzen et al. (subnetwork on feature maps)",
            DetectorKind::Feinman => "Feinman et al. (kernel density)",
        }
    }

    /// The model set's name for a data set's detector: `cifar10-gong`.
    pub fn file_stem(self, dataset: DatasetKind) -> String {
        format!("{}-{}", dataset.name(), self.name())
    }
}

/// Where Metzen et al.'s subnetwork is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetzenLayer {
    /// After the first block (conv, conv, pool).
    Block1,
    /// After the second block (conv, conv, pool): the last feature maps.
    Block2,
}

impl MetzenLayer {
    pub fn channels(self, config: &ClassifierConfig) -> usize {
        match self {
            MetzenLayer::Block1 => config.filters[0],
            MetzenLayer::Block2 => config.filters[1],
        }
    }

    pub fn read(self, acts: &super::Activations) -> Tensor<4> {
        match self {
            MetzenLayer::Block1 => acts.block1.clone(),
            MetzenLayer::Block2 => acts.block2.clone(),
        }
    }
}

/// Width of the subnetwork's convolutions.
pub const METZEN_WIDTH: usize = 64;

/// Metzen et al.'s detector subnetwork, scaled to the C&W classifier: two 3x3 convolutions
/// (padding 1, ReLU), global average pooling, a dense layer with two outputs (benign,
/// adversarial).
#[derive(Module, Debug)]
pub struct MetzenNet {
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
}

impl MetzenNet {
    pub fn init(channels: usize, device: &Device) -> Self {
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        MetzenNet { conv1: conv(channels, METZEN_WIDTH), conv2: conv(METZEN_WIDTH, METZEN_WIDTH), fc: LinearConfig::new(METZEN_WIDTH, 2).init(device) }
    }

    /// Logits [n, 2] of feature maps [n, channels, h, w].
    pub fn forward(&self, maps: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(maps));
        let x = relu(self.conv2.forward(x));
        let [n, c, _, _] = x.dims();
        self.fc.forward(x.mean_dims(&[2, 3]).reshape([n, c]))
    }

    pub fn describe(layer: MetzenLayer, channels: usize) -> String {
        format!("on the classifier's {layer:?} feature maps ({channels} channels): conv3x3 {METZEN_WIDTH} (pad 1), conv3x3 {METZEN_WIDTH} (pad 1), global average pool, dense 2; ReLU; classifier frozen")
    }
}

/// What the density keeps per class and how it is read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KdeSampleInfo {
    /// Gaussian kernel bandwidth sigma (Feinman et al.'s CIFAR-10 value: 0.26).
    pub bandwidth: f32,
    /// Benign training images per class in the sample.
    pub per_class: usize,
    pub classes: usize,
    /// Width of the last hidden layer.
    pub dims: usize,
}

/// The manifest beside each detector's file (`models/cifar10-gong.json`, ...).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorManifest {
    pub dataset: DatasetKind,
    pub kind: DetectorKind,
    pub architecture: String,
    /// The classifier it reads or was trained against, and that classifier's weights.
    pub classifier: String,
    pub classifier_sha256: String,
    /// File beside the manifest: safetensors (Gong, Metzen) or little-endian f32 (the KDE sample,
    /// [classes * per_class, dims], class after class).
    pub weights: String,
    pub sha256: String,
    pub bytes: usize,
    /// Gong: the network's configuration (the classifier's, two outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gong: Option<ClassifierConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metzen_layer: Option<MetzenLayer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kde: Option<KdeSampleInfo>,
    /// Scores above it are flagged: 5% of the benign held-out images that set it.
    pub threshold: f32,
    /// The adaptive attack's hinge aims this far under the threshold (a tenth of the way from the
    /// threshold to the median benign score), so that 8-bit rounding does not push it back over.
    pub margin: f32,
    /// Measured on other benign held-out images than those that set the threshold.
    pub false_positive_rate: f64,
    pub calibration_images: usize,
    pub false_positive_images: usize,
    /// How it was trained and what was measured (images, adversarial examples, epochs, time,
    /// detection on held-out adversarial examples, alternatives tried).
    pub training: serde_json::Value,
}

impl DetectorManifest {
    pub fn parse(json: &str) -> Result<Self, String> {
        let m: DetectorManifest = serde_json::from_str(json).map_err(|e| format!("detector manifest is not valid: {e}"))?;
        let missing = match m.kind {
            DetectorKind::Gong => m.gong.is_none(),
            DetectorKind::Metzen => m.metzen_layer.is_none(),
            DetectorKind::Feinman => m.kde.is_none(),
        };
        if missing {
            return Err(format!("detector manifest is not valid: the {} detector's settings are missing", m.kind.name()));
        }
        if !m.threshold.is_finite() {
            return Err("detector manifest is not valid: the threshold is not a number".into());
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }

    /// The model set's name for it (its file's stem).
    pub fn name(&self) -> &str {
        self.weights.rsplit_once('.').map_or(self.weights.as_str(), |(s, _)| s)
    }
}

/// A detector's trained part, decoded.
pub enum DetectorWeights {
    Gong(Classifier),
    Metzen(MetzenNet),
    /// [classes * per_class, dims].
    Feinman(Tensor<2>),
}

/// Decodes safetensors bytes into `module` (its shapes decide), reporting missing, unexpected or
/// misshapen tensors.
pub fn decode_module<M: Module + ModuleSnapshot>(mut module: M, bytes: &[u8]) -> Result<M, ModelError> {
    if bytes.len() < 8 || u64::from_le_bytes(bytes[..8].try_into().unwrap()) > (bytes.len() - 8) as u64 {
        return Err(ModelError::Weights(format!("not a safetensors file or truncated ({} bytes)", bytes.len())));
    }
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = module.load_from(&mut store).map_err(|e| ModelError::Weights(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(ModelError::Weights(result.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")));
    }
    if !result.missing.is_empty() {
        return Err(ModelError::Weights(format!("missing tensors: {}", result.missing.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", "))));
    }
    if !result.unused.is_empty() {
        return Err(ModelError::Weights(format!("unexpected tensors: {}", result.unused.join(", "))));
    }
    Ok(module)
}

/// Safetensors bytes of any module.
pub fn encode_module<M: Module + ModuleSnapshot>(module: &M) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None);
    module.save_into(&mut store).map_err(|e| ModelError::Weights(e.to_string()))?;
    store.get_bytes().map_err(|e| ModelError::Weights(e.to_string()))
}

/// The KDE sample as little-endian f32 bytes.
pub fn encode_sample(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Checks a detector's file against its manifest and decodes it on `device`.
pub fn load_detector(manifest: &DetectorManifest, bytes: &[u8], device: &Device) -> Result<DetectorWeights, ModelError> {
    let found = sha256_hex(bytes);
    if found != manifest.sha256 {
        return Err(ModelError::HashMismatch { expected: manifest.sha256.clone(), found });
    }
    let missing = || ModelError::Manifest(format!("the {} detector's settings are missing", manifest.kind.name()));
    Ok(match manifest.kind {
        DetectorKind::Gong => {
            let config = manifest.gong.as_ref().ok_or_else(missing)?;
            DetectorWeights::Gong(decode_module(config.init(device), bytes)?)
        }
        DetectorKind::Metzen => {
            let layer = manifest.metzen_layer.ok_or_else(missing)?;
            let channels = layer.channels(&ClassifierConfig::for_dataset(manifest.dataset));
            DetectorWeights::Metzen(decode_module(MetzenNet::init(channels, device), bytes)?)
        }
        DetectorKind::Feinman => {
            let kde = manifest.kde.as_ref().ok_or_else(missing)?;
            let rows = kde.classes * kde.per_class;
            if bytes.len() != rows * kde.dims * 4 || rows == 0 {
                return Err(ModelError::Weights(format!("the KDE sample has {} bytes, the manifest describes {rows} x {} f32 values", bytes.len(), kde.dims)));
            }
            let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::Weights("the KDE sample holds values that are not numbers".into()));
            }
            DetectorWeights::Feinman(Tensor::from_data(TensorData::new(values, [rows, kde.dims]), device))
        }
    })
}
