//! Loaders against small files the tests make: correct files decode to the right pixels and
//! labels; every kind of malformed file gives an error naming the file and the problem.

use advlab::data::{cifar, folder, mnist, ImageShape};
use advlab::models::DatasetKind;
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("advlab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2051u32, n, rows, cols] {
        v.extend(x.to_be_bytes());
    }
    v.extend(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(2049u32.to_be_bytes());
    v.extend((labels.len() as u32).to_be_bytes());
    v.extend(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn mnist_dir(name: &str, gzip: bool) -> PathBuf {
    let d = tmpdir(name);
    let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 251) as u8).collect();
    let suffix = if gzip { ".gz" } else { "" };
    for (img, lab, labels) in [("train-images-idx3-ubyte", "train-labels-idx1-ubyte", [3u8, 9]), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", [7, 2])] {
        let (i, l) = (idx_images(2, 28, 28, &pixels), idx_labels(&labels));
        write(&d.join(format!("{img}{suffix}")), &if gzip { gz(&i) } else { i });
        write(&d.join(format!("{lab}{suffix}")), &if gzip { gz(&l) } else { l });
    }
    d
}

#[test]
fn mnist_idx_reads_plain_and_gzipped() {
    for gzip in [false, true] {
        let d = mnist_dir(&format!("mnist-ok-{gzip}"), gzip);
        let splits = mnist::load_dir(&d).unwrap();
        assert_eq!(splits.train.labels, vec![3, 9]);
        assert_eq!(splits.test.labels, vec![7, 2]);
        assert_eq!(splits.test.shape, ImageShape::MNIST);
        assert_eq!(splits.test.image(1)[0], (784 % 251) as u8);
        assert!((splits.test.image_f32(0)[250] - 250.0 / 255.0).abs() < 1e-7);
    }
}

fn err_of<T: std::fmt::Debug>(r: Result<T, advlab::data::DataError>) -> String {
    r.expect_err("must fail").to_string()
}

#[test]
fn mnist_malformed_files_are_named_and_explained() {
    let ok_px = vec![0u8; 784];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad magic", { let mut v = idx_images(1, 28, 28, &ok_px); v[3] = 0x99; v }, "bad magic number"),
        ("short header", vec![0, 0, 8, 3, 0], "truncated header"),
        ("truncated body", idx_images(2, 28, 28, &ok_px), "truncated"),
        ("too long", idx_images(1, 28, 28, &[0u8; 800]), "wrong size"),
        ("wrong dims", idx_images(1, 27, 29, &[0u8; 27 * 29]), "27x29"),
    ];
    for (what, bytes, expect) in cases {
        let d = tmpdir(&format!("mnist-bad-{}", what.replace(' ', "-")));
        let (ip, lp) = (d.join("imgs"), d.join("labels"));
        write(&ip, &bytes);
        write(&lp, &idx_labels(&[1]));
        let msg = mnist::load_pair(&ip, &lp).map(|_| ()).expect_err(what).to_string();
        assert!(msg.contains(expect), "{what}: {msg}");
        assert!(msg.contains(&ip.display().to_string()), "{what}: message must name the file: {msg}");
    }
    // Label files: bad magic, count mismatch, non-digit label, corrupt gzip.
    let d = tmpdir("mnist-bad-labels");
    let ip = d.join("imgs");
    write(&ip, &idx_images(1, 28, 28, &ok_px));
    let lp = d.join("labels");
    let mut bad = idx_labels(&[1]);
    bad[2] = 9;
    write(&lp, &bad);
    assert!(err_of(mnist::load_pair(&ip, &lp)).contains("bad magic number"));
    write(&lp, &idx_labels(&[1, 2]));
    assert!(err_of(mnist::load_pair(&ip, &lp)).contains("2 labels for 1 images"));
    write(&lp, &idx_labels(&[12]));
    assert!(err_of(mnist::load_pair(&ip, &lp)).contains("not a digit"));
    let mut corrupt = gz(&idx_labels(&[1]));
    let n = corrupt.len();
    corrupt.truncate(n - 6);
    corrupt[12] ^= 0xff;
    write(&lp, &corrupt);
    assert!(err_of(mnist::load_pair(&ip, &lp)).contains("gzip"));
    // A missing file is named too.
    let msg = err_of(mnist::load_dir(&tmpdir("mnist-empty")));
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("not found"), "{msg}");
}

fn cifar_record(label: u8, seed: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..3072).map(|i| ((i / 1024) as u8 * 80).wrapping_add(seed).wrapping_add((i % 7) as u8)));
    r
}

#[test]
fn cifar10_binary_version_reads_labels_and_planes() {
    let d = tmpdir("cifar-bin");
    for i in 1..=5u8 {
        let mut batch = cifar_record(i, i);
        batch.extend(cifar_record(9, 100 + i));
        write(&d.join(format!("data_batch_{i}.bin")), &batch);
    }
    let mut test = cifar_record(0, 7);
    test.extend(cifar_record(6, 8));
    write(&d.join("test_batch.bin"), &test);
    assert!(cifar::looks_like_binary_dir(&d));
    let splits = advlab::data::load_splits(DatasetKind::Cifar10, &d).unwrap();
    assert_eq!(splits.train.labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    assert_eq!(splits.test.labels, vec![0, 6]);
    let img = splits.test.image(1);
    // Planes are R (bytes 0..1024), G, B: exactly the record's order.
    let expected = |i: usize, seed: u8| ((i / 1024) as u8 * 80).wrapping_add(seed).wrapping_add((i % 7) as u8);
    assert_eq!(img[0], 8);
    assert_eq!(img[1024], expected(1024, 8));
    assert_eq!(img[2048 + 3], expected(2051, 8));
    assert_eq!(splits.train.image(3), &cifar_record(9, 102)[1..]);
}

#[test]
fn cifar10_binary_malformed() {
    let d = tmpdir("cifar-bin-bad");
    let p = d.join("test_batch.bin");
    let mut rec = cifar_record(3, 0);
    rec.truncate(3000);
    write(&p, &rec);
    let msg = err_of(cifar::load_batch(&p));
    assert!(msg.contains("truncated") && msg.contains("test_batch.bin"), "{msg}");
    write(&p, &cifar_record(10, 0));
    assert!(err_of(cifar::load_batch(&p)).contains("label 10"));
    write(&p, &[]);
    assert!(err_of(cifar::load_batch(&p)).contains("empty"));
}

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn make_folder(root: &Path) {
    for (split, class, file, colour) in [
        ("train", "cat", "0001.png", [10, 20, 30]),
        ("train", "airplane", "0001.png", [40, 50, 60]),
        ("train", "cat", "0002.png", [70, 80, 90]),
        ("test", "ship", "0001.png", [1, 2, 3]),
        ("test", "airplane", "0001.png", [4, 5, 6]),
    ] {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir.join(file), &png(32, 32, colour));
    }
}

fn classes() -> Vec<&'static str> {
    DatasetKind::Cifar10.class_names()
}

#[test]
fn image_folders_read_from_dir_tar_and_tar_gz() {
    let root = tmpdir("folder-ok");
    let tree = root.join("tree");
    make_folder(&tree);
    let check = |splits: advlab::data::Splits| {
        // Interleaved by rank inside each class, then class: airplane(0) before cat(3).
        assert_eq!(splits.train.labels, vec![0, 3, 3]);
        assert_eq!(splits.train.image(0)[0], 40);
        assert_eq!(splits.train.image(1)[1024], 20);
        assert_eq!(splits.train.image(2)[2048 + 100], 90);
        assert_eq!(splits.test.labels, vec![0, 8]);
    };
    check(folder::load_splits(&tree, &classes(), ImageShape::CIFAR10).unwrap());
    // tar and tar.gz with a prefix folder, like the shared data set.
    let tar_path = root.join("set.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        b.append_dir_all("cifar10", &tree).unwrap();
        b.finish().unwrap();
    }
    check(folder::load_splits(&tar_path, &classes(), ImageShape::CIFAR10).unwrap());
    let gz_dir = root.join("gz");
    std::fs::create_dir_all(&gz_dir).unwrap();
    write(&gz_dir.join("cifar10-jpeg.tar.gz"), &gz(&std::fs::read(&tar_path).unwrap()));
    check(advlab::data::load_splits(DatasetKind::Cifar10, &gz_dir).unwrap());
}

#[test]
fn image_folders_malformed() {
    let root = tmpdir("folder-bad");
    // Unknown class folder.
    let t = root.join("a");
    std::fs::create_dir_all(t.join("train/giraffe")).unwrap();
    write(&t.join("train/giraffe/1.png"), &png(32, 32, [0, 0, 0]));
    let msg = folder::load_splits(&t, &classes(), ImageShape::CIFAR10).err().unwrap().to_string();
    assert!(msg.contains("unknown class folder 'giraffe'"), "{msg}");
    // Wrong image size.
    let t = root.join("b");
    std::fs::create_dir_all(t.join("train/cat")).unwrap();
    std::fs::create_dir_all(t.join("test/cat")).unwrap();
    write(&t.join("train/cat/1.png"), &png(31, 32, [0, 0, 0]));
    write(&t.join("test/cat/1.png"), &png(32, 32, [0, 0, 0]));
    let msg = folder::load_splits(&t, &classes(), ImageShape::CIFAR10).err().unwrap().to_string();
    assert!(msg.contains("31x32"), "{msg}");
    // Undecodable image.
    write(&t.join("train/cat/1.png"), b"this is not a png");
    let msg = folder::load_splits(&t, &classes(), ImageShape::CIFAR10).err().unwrap().to_string();
    assert!(msg.contains("not a decodable image") && msg.contains("1.png"), "{msg}");
    // Not a tar.
    let p = root.join("x.tar");
    write(&p, &[7u8; 1500]);
    let msg = folder::load_splits(&p, &classes(), ImageShape::CIFAR10).err().unwrap().to_string();
    assert!(msg.contains("x.tar"), "{msg}");
    // Empty folder.
    let msg = folder::load_splits(&tmpdir("folder-empty"), &classes(), ImageShape::CIFAR10).err().unwrap().to_string();
    assert!(msg.contains("no train/"), "{msg}");
}
