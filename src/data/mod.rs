//! Data sets on disk: MNIST IDX files, the CIFAR-10 binary version and image folders
//! (`<split>/<class>/*.png|jpg`, plain or inside a tar / tar.gz).
//!
//! Everything here produces a [`Dataset`] of 8-bit pixels in CHW order; conversion to the
//! [0, 1] floats the models take happens when a batch is built, so a whole training set stays
//! small in memory (MNIST 47 MB, CIFAR-10 150 MB).

#[cfg(not(target_family = "wasm"))]
pub mod cifar;
#[cfg(not(target_family = "wasm"))]
pub mod folder;
#[cfg(not(target_family = "wasm"))]
pub mod mnist;

use std::fmt;

/// Channels, height and width of every image of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub const MNIST: ImageShape = ImageShape { channels: 1, height: 28, width: 28 };
    pub const CIFAR10: ImageShape = ImageShape { channels: 3, height: 32, width: 32 };

    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// Images (u8, CHW, one after the other) with their labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub shape: ImageShape,
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The image as floats in [0, 1], the scale of the whole public API.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// The first `n` images (or all of them).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            shape: self.shape,
            images: self.images[..n * self.shape.len()].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Dataset {
        let end = end.min(self.len());
        let n = self.shape.len();
        Dataset {
            shape: self.shape,
            images: self.images[start * n..end * n].to_vec(),
            labels: self.labels[start..end].to_vec(),
        }
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            shape: self.shape,
            images: indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// A training split and a test split.
#[derive(Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

/// What went wrong reading a data file; always names the file.
#[derive(Debug)]
pub struct DataError {
    pub path: String,
    pub problem: String,
}

impl DataError {
    pub fn new(path: impl fmt::Display, problem: impl Into<String>) -> Self {
        DataError { path: path.to_string(), problem: problem.into() }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

impl std::error::Error for DataError {}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
#[cfg(not(target_family = "wasm"))]
pub fn read_maybe_gz(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let raw = std::fs::read(path).map_err(|e| DataError::new(path.display(), format!("cannot read: {e}")))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::new(path.display(), format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Finds the two splits of a named data set under `root` (`mnist` or `cifar10`), in any of the
/// supported layouts.
#[cfg(not(target_family = "wasm"))]
pub fn load_splits(dataset: DatasetKind, root: &std::path::Path) -> Result<Splits, DataError> {
    match dataset {
        DatasetKind::Mnist => mnist::load_dir(root),
        DatasetKind::Cifar10 => {
            if cifar::looks_like_binary_dir(root) {
                cifar::load_dir(root)
            } else {
                folder::load_splits(root, &DatasetKind::Cifar10.class_names(), ImageShape::CIFAR10)
            }
        }
    }
}

/// The two data sets of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Mnist,
    Cifar10,
}

impl DatasetKind {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "cifar10" | "cifar" => Ok(DatasetKind::Cifar10),
            other => Err(format!("unknown data set '{other}' (expected mnist or cifar10)")),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    pub fn shape(&self) -> ImageShape {
        match self {
            DatasetKind::Mnist => ImageShape::MNIST,
            DatasetKind::Cifar10 => ImageShape::CIFAR10,
        }
    }

    pub fn class_names(&self) -> Vec<&'static str> {
        match self {
            DatasetKind::Mnist => vec!["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::Cifar10 => {
                vec!["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
            }
        }
    }
}

