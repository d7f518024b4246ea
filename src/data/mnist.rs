//! MNIST in its original IDX format (big-endian header, u8 pixels, row-major 28x28), gzipped or not.

use super::{read_maybe_gz, DataError, Dataset, ImageShape, Splits};
use std::path::Path;

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses an IDX3 image file: returns (count, rows, cols, pixels).
pub fn parse_images(bytes: &[u8], name: &str) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    if bytes.len() < 16 {
        return Err(DataError::new(name, format!("truncated header: {} bytes, an IDX image file needs 16", bytes.len())));
    }
    let magic = be_u32(bytes, 0);
    if magic != IMAGES_MAGIC {
        return Err(DataError::new(name, format!("bad magic number {magic} (an IDX image file has {IMAGES_MAGIC})")));
    }
    let (n, rows, cols) = (be_u32(bytes, 4) as usize, be_u32(bytes, 8) as usize, be_u32(bytes, 12) as usize);
    let expected = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .ok_or_else(|| DataError::new(name, "header sizes overflow"))?;
    let body = &bytes[16..];
    if body.len() != expected {
        let what = if body.len() < expected { "truncated" } else { "wrong size" };
        return Err(DataError::new(
            name,
            format!("{what}: header says {n} images of {rows}x{cols} ({expected} bytes), file holds {} bytes", body.len()),
        ));
    }
    Ok((n, rows, cols, body.to_vec()))
}

/// Parses an IDX1 label file.
pub fn parse_labels(bytes: &[u8], name: &str) -> Result<Vec<u8>, DataError> {
    if bytes.len() < 8 {
        return Err(DataError::new(name, format!("truncated header: {} bytes, an IDX label file needs 8", bytes.len())));
    }
    let magic = be_u32(bytes, 0);
    if magic != LABELS_MAGIC {
        return Err(DataError::new(name, format!("bad magic number {magic} (an IDX label file has {LABELS_MAGIC})")));
    }
    let n = be_u32(bytes, 4) as usize;
    let body = &bytes[8..];
    if body.len() != n {
        let what = if body.len() < n { "truncated" } else { "wrong size" };
        return Err(DataError::new(name, format!("{what}: header says {n} labels, file holds {}", body.len())));
    }
    if let Some(bad) = body.iter().find(|&&l| l > 9) {
        return Err(DataError::new(name, format!("label {bad} is not a digit 0-9")));
    }
    Ok(body.to_vec())
}

/// Reads an image file and its label file into a data set.
pub fn load_pair(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let (n, rows, cols, pixels) = parse_images(&read_maybe_gz(images)?, &images.display().to_string())?;
    if (rows, cols) != (28, 28) {
        return Err(DataError::new(images.display(), format!("images are {rows}x{cols}, MNIST digits are 28x28")));
    }
    let labels_v = parse_labels(&read_maybe_gz(labels)?, &labels.display().to_string())?;
    if labels_v.len() != n {
        return Err(DataError::new(
            labels.display(),
            format!("{} labels for {n} images in {}", labels_v.len(), images.display()),
        ));
    }
    Ok(Dataset { shape: ImageShape::MNIST, images: pixels, labels: labels_v })
}

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> Result<std::path::PathBuf, DataError> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(DataError::new(dir.join(name).display(), "not found (looked for it with and without .gz)"))
}

/// Reads the four standard files of a directory.
pub fn load_dir(dir: &Path) -> Result<Splits, DataError> {
    let train = load_pair(&find(dir, "train-images-idx3-ubyte")?, &find(dir, "train-labels-idx1-ubyte")?)?;
    let test = load_pair(&find(dir, "t10k-images-idx3-ubyte")?, &find(dir, "t10k-labels-idx1-ubyte")?)?;
    Ok(Splits { train, test })
}
