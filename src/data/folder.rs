//! Image folders: `<split>/<class>/<file>.png|jpg`, as a directory, a `.tar` or a `.tar.gz`
//! (or a directory holding one such archive, as `../shared/data/cifar10/` does).
//!
//! Images of one split are ordered by their rank inside their class, then by class, so the
//! "first N test images" are class-balanced, and by file name inside a class so the order is
//! the same on every machine.

use super::{read_maybe_gz, DataError, Dataset, ImageShape, Splits};
use std::collections::BTreeMap;
use std::path::Path;

/// (split, class index, file name) -> encoded bytes.
type Entries = BTreeMap<(String, usize, String), Vec<u8>>;

/// Decodes one encoded image into CHW u8 with the expected shape.
pub fn decode_exact(bytes: &[u8], shape: ImageShape, name: &str) -> Result<Vec<u8>, DataError> {
    let img = image::load_from_memory(bytes).map_err(|e| DataError::new(name, format!("not a decodable image: {e}")))?;
    if (img.width() as usize, img.height() as usize) != (shape.width, shape.height) {
        return Err(DataError::new(
            name,
            format!("image is {}x{}, this data set's images are {}x{}", img.width(), img.height(), shape.width, shape.height),
        ));
    }
    let (w, h) = (shape.width, shape.height);
    let mut out = vec![0u8; shape.len()];
    if shape.channels == 1 {
        out.copy_from_slice(img.to_luma8().as_raw());
    } else {
        let rgb = img.to_rgb8();
        for (p, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                out[c * w * h + p] = px[c];
            }
        }
    }
    Ok(out)
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

/// Files whose path ends in `<split>/<class>/<file>`; other files are ignored, an unknown class
/// folder under a split is an error.
fn classify(path: &str, classes: &[&str], origin: &str) -> Result<Option<(String, usize, String)>, DataError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.len() < 3 || !is_image_name(parts[parts.len() - 1]) {
        return Ok(None);
    }
    let (split, class, file) = (parts[parts.len() - 3], parts[parts.len() - 2], parts[parts.len() - 1]);
    if split != "train" && split != "test" {
        return Ok(None);
    }
    let index = classes
        .iter()
        .position(|c| *c == class)
        .ok_or_else(|| DataError::new(origin, format!("unknown class folder '{class}' in {path} (expected one of {})", classes.join(", "))))?;
    Ok(Some((split.to_string(), index, file.to_string())))
}

fn entries_from_tar(path: &Path, classes: &[&str]) -> Result<Entries, DataError> {
    use std::io::Read;
    let bytes = read_maybe_gz(path)?;
    let origin = path.display().to_string();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut entries = Entries::new();
    let iter = archive.entries().map_err(|e| DataError::new(&origin, format!("not a tar archive: {e}")))?;
    for entry in iter {
        let mut entry = entry.map_err(|e| DataError::new(&origin, format!("not a tar archive or truncated: {e}")))?;
        let name = entry.path().map_err(|e| DataError::new(&origin, format!("bad entry name: {e}")))?.to_string_lossy().to_string();
        if let Some(key) = classify(&name, classes, &origin)? {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| DataError::new(&origin, format!("truncated entry {name}: {e}")))?;
            entries.insert(key, data);
        }
    }
    Ok(entries)
}

fn entries_from_dir(root: &Path, classes: &[&str]) -> Result<Entries, DataError> {
    let mut entries = Entries::new();
    for split in ["train", "test"] {
        let split_dir = root.join(split);
        if !split_dir.is_dir() {
            continue;
        }
        let read = |p: &Path| std::fs::read_dir(p).map_err(|e| DataError::new(p.display(), format!("cannot list: {e}")));
        for class_dir in read(&split_dir)? {
            let class_dir = class_dir.map_err(|e| DataError::new(split_dir.display(), e.to_string()))?.path();
            if !class_dir.is_dir() {
                continue;
            }
            for file in read(&class_dir)? {
                let file = file.map_err(|e| DataError::new(class_dir.display(), e.to_string()))?.path();
                let rel = format!("{split}/{}/{}", class_dir.file_name().unwrap().to_string_lossy(), file.file_name().unwrap().to_string_lossy());
                if let Some(key) = classify(&rel, classes, &root.display().to_string())? {
                    let data = std::fs::read(&file).map_err(|e| DataError::new(file.display(), format!("cannot read: {e}")))?;
                    entries.insert(key, data);
                }
            }
        }
    }
    Ok(entries)
}

fn is_archive(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.ends_with(".tar") || s.ends_with(".tar.gz") || s.ends_with(".tgz")
}

fn build(entries: &Entries, split: &str, shape: ImageShape, origin: &str) -> Result<Dataset, DataError> {
    // Rank of each file inside its class, for the class-interleaved order.
    let mut by_class: BTreeMap<usize, Vec<(&String, &Vec<u8>)>> = BTreeMap::new();
    for ((s, class, file), data) in entries {
        if s == split {
            by_class.entry(*class).or_default().push((file, data));
        }
    }
    let mut order: Vec<(usize, usize, &String, &Vec<u8>)> = Vec::new();
    for (class, files) in &by_class {
        for (rank, (file, data)) in files.iter().enumerate() {
            order.push((rank, *class, file, data));
        }
    }
    order.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    if order.is_empty() {
        return Err(DataError::new(origin, format!("no images under {split}/<class>/")));
    }
    let mut images = Vec::with_capacity(order.len() * shape.len());
    let mut labels = Vec::with_capacity(order.len());
    for (_, class, file, data) in order {
        images.extend(decode_exact(data, shape, &format!("{origin}: {split}/{file}"))?);
        labels.push(class as u8);
    }
    Ok(Dataset { shape, images, labels })
}

/// Reads both splits from a directory, an archive, or a directory holding one archive.
pub fn load_splits(root: &Path, classes: &[&str], shape: ImageShape) -> Result<Splits, DataError> {
    let origin = root.display().to_string();
    let entries = if root.is_file() {
        entries_from_tar(root, classes)?
    } else if root.join("train").is_dir() || root.join("test").is_dir() {
        entries_from_dir(root, classes)?
    } else {
        let listing = std::fs::read_dir(root).map_err(|e| DataError::new(&origin, format!("cannot open: {e}")))?;
        let mut archives: Vec<_> = listing.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_archive(p)).collect();
        archives.sort();
        match archives.first() {
            Some(a) => entries_from_tar(a, classes)?,
            None => return Err(DataError::new(&origin, "no train/ or test/ folder and no .tar/.tar.gz archive here")),
        }
    };
    Ok(Splits { train: build(&entries, "train", shape, &origin)?, test: build(&entries, "test", shape, &origin)? })
}
