//! The classifiers of Carlini & Wagner (2017), their weights on disk (safetensors) and the
//! manifest that describes each committed model.

pub mod detectors;
pub mod ensemble;
pub mod manifest;
pub mod set;

pub use crate::data::DatasetKind;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

pub use manifest::{load_model, ModelError, ModelManifest};
pub use ensemble::{Ensemble, EnsembleManifest};
pub use set::{LoadedClassifier, LoadedDetector, LoadedEnsemble, ModelSet};

/// The C&W architecture family: two blocks of two valid 3x3 convolutions + 2x2 max-pool,
/// then two dense layers with dropout after the first, then the logits.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    pub in_channels: usize,
    pub image_size: usize,
    /// Filters of the first and of the second block.
    pub filters: [usize; 2],
    /// Width of both hidden dense layers.
    pub dense: usize,
    #[config(default = 10)]
    pub classes: usize,
    #[config(default = 0.5)]
    pub dropout: f64,
}

impl ClassifierConfig {
    /// The architecture each data set uses.
    pub fn for_dataset(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Mnist => ClassifierConfig::mnist(),
            DatasetKind::Cifar10 => ClassifierConfig::cifar10(),
        }
    }

    /// MNIST: conv 32, conv 32, pool, conv 64, conv 64, pool, dense 200, dense 200, dense 10.
    pub fn mnist() -> Self {
        ClassifierConfig::new(1, 28, [32, 64], 200)
    }

    /// CIFAR-10: conv 64, conv 64, pool, conv 128, conv 128, pool, dense 256, dense 256, dense 10.
    pub fn cifar10() -> Self {
        ClassifierConfig::new(3, 32, [64, 128], 256)
    }

    /// Side of the feature map after the second pool: two valid convs (-4) and a pool (/2), twice.
    pub fn feature_side(&self) -> usize {
        ((self.image_size - 4) / 2 - 4) / 2
    }

    pub fn describe(&self) -> String {
        let [a, b] = self.filters;
        format!(
            "conv3x3 {a}, conv3x3 {a}, maxpool 2, conv3x3 {b}, conv3x3 {b}, maxpool 2, dense {d}, dense {d}, dense {c}; ReLU; dropout {p} while training (Carlini & Wagner 2017)",
            d = self.dense,
            c = self.classes,
            p = self.dropout
        )
    }

    pub fn init(&self, device: &Device) -> Classifier {
        let [a, b] = self.filters;
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).init(device);
        let side = self.feature_side();
        Classifier {
            conv1: conv(self.in_channels, a),
            conv2: conv(a, a),
            conv3: conv(a, b),
            conv4: conv(b, b),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(b * side * side, self.dense).init(device),
            fc2: LinearConfig::new(self.dense, self.dense).init(device),
            fc3: LinearConfig::new(self.dense, self.classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    conv4: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    dropout: Dropout,
}

impl Classifier {
    /// Output of the convolutional part, flattened: [batch, filters * side * side]. The feature
    /// detector of Metzen et al. reads these.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(x)); // [b, a, s-2, s-2]
        let x = relu(self.conv2.forward(x)); // [b, a, s-4, s-4]
        let x = self.pool.forward(x); // [b, a, (s-4)/2, ..]
        let x = relu(self.conv3.forward(x));
        let x = relu(self.conv4.forward(x));
        let x = self.pool.forward(x); // [b, b, side, side]
        x.flatten(1, 3)
    }

    /// The last hidden layer (the kernel density of Feinman et al. lives here): [batch, dense].
    pub fn hidden(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.fc1.forward(self.features(x)));
        let x = self.dropout.forward(x);
        relu(self.fc2.forward(x))
    }

    /// Logits (the Z of Carlini & Wagner): [batch, classes]. Input pixels in [0, 1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc3.forward(self.hidden(x))
    }

    /// One forward that keeps what case study 3's detectors read (Metzen et al.'s subnetwork a
    /// block's feature maps, Feinman et al.'s density the last hidden layer), so that a system
    /// with several of them runs the classifier once per step.
    pub fn activations(&self, x: Tensor<4>) -> Activations {
        let x = relu(self.conv1.forward(x));
        let block1 = self.pool.forward(relu(self.conv2.forward(x)));
        let x = relu(self.conv3.forward(block1.clone()));
        let block2 = self.pool.forward(relu(self.conv4.forward(x)));
        let h = self.dropout.forward(relu(self.fc1.forward(block2.clone().flatten(1, 3))));
        let hidden = relu(self.fc2.forward(h));
        let logits = self.fc3.forward(hidden.clone());
        Activations { block1, block2, hidden, logits }
    }

    /// The same network with a fresh output layer of `classes` logits (Gong et al.'s detector
    /// starts from the classifier's features with two outputs).
    pub fn with_new_head(mut self, classes: usize, device: &Device) -> Classifier {
        let dense = self.fc3.weight.val().dims()[0];
        self.fc3 = LinearConfig::new(dense, classes).init(device);
        self
    }
}

/// What one forward of the classifier computed, by layer.
#[derive(Clone)]
pub struct Activations {
    /// After the first block (two convolutions and the pool): [n, filters[0], 14, 14] on CIFAR-10.
    pub block1: Tensor<4>,
    /// After the second block: [n, filters[1], 5, 5] on CIFAR-10.
    pub block2: Tensor<4>,
    /// The last hidden layer: [n, dense].
    pub hidden: Tensor<2>,
    pub logits: Tensor<2>,
}
