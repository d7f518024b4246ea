//! The CIFAR-10 "binary version": records of 1 label byte + 1024 R + 1024 G + 1024 B bytes.

use super::{read_maybe_gz, DataError, Dataset, ImageShape, Splits};
use std::path::Path;

const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses one batch file.
pub fn parse_batch(bytes: &[u8], name: &str) -> Result<Dataset, DataError> {
    if bytes.is_empty() {
        return Err(DataError::new(name, "empty file"));
    }
    if bytes.len() % RECORD != 0 {
        return Err(DataError::new(
            name,
            format!(
                "truncated or wrong size: {} bytes is not a whole number of {RECORD}-byte records ({} whole records, {} bytes left over)",
                bytes.len(),
                bytes.len() / RECORD,
                bytes.len() % RECORD
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(DataError::new(name, format!("record {i}: label {} is not a class 0-9", record[0])));
        }
        labels.push(record[0]);
        // The record is already planar R, G, B: exactly our CHW layout.
        images.extend_from_slice(&record[1..]);
    }
    Ok(Dataset { shape: ImageShape::CIFAR10, images, labels })
}

pub fn load_batch(path: &Path) -> Result<Dataset, DataError> {
    parse_batch(&read_maybe_gz(path)?, &path.display().to_string())
}

/// Does `dir` hold the binary version (`data_batch_1.bin`, possibly under `cifar-10-batches-bin/`)?
pub fn looks_like_binary_dir(dir: &Path) -> bool {
    binary_root(dir).is_some()
}

fn binary_root(dir: &Path) -> Option<std::path::PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")].into_iter().find(|d| d.join("data_batch_1.bin").exists())
}

/// Reads `data_batch_1..5.bin` and `test_batch.bin`.
pub fn load_dir(dir: &Path) -> Result<Splits, DataError> {
    let root = binary_root(dir).ok_or_else(|| DataError::new(dir.display(), "no data_batch_1.bin here"))?;
    let mut train = Dataset { shape: ImageShape::CIFAR10, images: Vec::new(), labels: Vec::new() };
    for i in 1..=5 {
        let batch = load_batch(&root.join(format!("data_batch_{i}.bin")))?;
        train.images.extend(batch.images);
        train.labels.extend(batch.labels);
    }
    let test = load_batch(&root.join("test_batch.bin"))?;
    Ok(Splits { train, test })
}
