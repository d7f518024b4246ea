//! Turning pictures into model inputs: hand-checked resampling, the MNIST centring and the
//! CIFAR-10 crop, and the errors for pictures that cannot be used.

use advlab::data::ImageShape;
use advlab::preprocess::{cifar_photo, mnist_digit, prepare, quantize_8bit, resize_area, to_rgba, MAX_PIXELS};
use advlab::models::DatasetKind;

fn rgba_from_grey(g: &[u8]) -> Vec<u8> {
    g.iter().flat_map(|&v| [v, v, v, 255]).collect()
}

#[test]
fn area_resize_by_hand() {
    let src = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0];
    // 4x4 -> 2x2: each output is the mean of a 2x2 block.
    assert_eq!(resize_area(&src, 4, 4, 2, 2), vec![2.5, 4.5, 10.5, 12.5]);
    // 2x1 -> 3x1: output 1 covers the right third of input 0 and the left third of input 1.
    let r = resize_area(&[0.0, 3.0], 2, 1, 3, 1);
    assert!((r[0] - 0.0).abs() < 1e-6 && (r[1] - 1.5).abs() < 1e-6 && (r[2] - 3.0).abs() < 1e-6, "{r:?}");
}

#[test]
fn a_dark_stroke_on_white_becomes_a_centred_mnist_digit() {
    // A 100x100 white canvas with a black bar 10 wide and 40 high near the top-left corner.
    let (w, h) = (100, 100);
    let mut g = vec![255u8; w * h];
    for y in 5..45 {
        for x in 10..20 {
            g[y * w + x] = 0;
        }
    }
    let digit = mnist_digit(&rgba_from_grey(&g), w, h).unwrap();
    assert_eq!(digit.len(), 784);
    // Inverted (ink is bright), bounding box 20 high and 5 wide, centre of mass at (14, 14).
    let on: Vec<(usize, usize)> = (0..784).filter(|&i| digit[i] > 0.5).map(|i| (i % 28, i / 28)).collect();
    let (ys, xs): (Vec<usize>, Vec<usize>) = (on.iter().map(|p| p.1).collect(), on.iter().map(|p| p.0).collect());
    assert_eq!(ys.iter().max().unwrap() - ys.iter().min().unwrap() + 1, 20);
    assert_eq!(xs.iter().max().unwrap() - xs.iter().min().unwrap() + 1, 5);
    let mass: f32 = digit.iter().sum();
    let cx: f32 = (0..784).map(|i| digit[i] * ((i % 28) as f32 + 0.5)).sum::<f32>() / mass;
    let cy: f32 = (0..784).map(|i| digit[i] * ((i / 28) as f32 + 0.5)).sum::<f32>() / mass;
    assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5, "centre of mass ({cx}, {cy})");
    // White ink on black (already MNIST's polarity) gives the same digit.
    let inverted: Vec<u8> = g.iter().map(|v| 255 - v).collect();
    assert_eq!(mnist_digit(&rgba_from_grey(&inverted), w, h).unwrap(), digit);
}

#[test]
fn pictures_of_the_model_size_are_taken_pixel_for_pixel() {
    let g: Vec<u8> = (0..784).map(|i| (i * 13 % 256) as u8).collect();
    let d = prepare(DatasetKind::Mnist, &rgba_from_grey(&g), 28, 28).unwrap();
    assert!(d.iter().zip(&g).all(|(a, b)| *a == *b as f32 / 255.0));
    // 8-bit round trip of an adversarial image: to_rgba then back is exactly the quantised image.
    let adv: Vec<f32> = (0..784).map(|i| ((i * 7919) % 1000) as f32 / 999.0).collect();
    let back = prepare(DatasetKind::Mnist, &to_rgba(&adv, ImageShape::MNIST), 28, 28).unwrap();
    assert_eq!(back, quantize_8bit(&adv));
    let rgb: Vec<f32> = (0..3072).map(|i| ((i * 31) % 256) as f32 / 255.0).collect();
    let back = prepare(DatasetKind::Cifar10, &to_rgba(&rgb, ImageShape::CIFAR10), 32, 32).unwrap();
    assert!(back.iter().zip(&rgb).all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn cifar_photos_are_scaled_and_centre_cropped() {
    // 128x64: left quarter red, middle half green, right quarter blue. The centre crop is the
    // middle 64x64 (all green), scaled to 32x32.
    let (w, h) = (128, 64);
    let mut rgba = Vec::new();
    for _y in 0..h {
        for x in 0..w {
            let px = if x < 32 { [255, 0, 0, 255] } else if x < 96 { [0, 255, 0, 255] } else { [0, 0, 255, 255] };
            rgba.extend(px);
        }
    }
    let img = cifar_photo(&rgba, w, h).unwrap();
    assert_eq!(img.len(), 3 * 1024);
    assert!(img[..1024].iter().all(|v| *v == 0.0));
    assert!(img[1024..2048].iter().all(|v| *v == 1.0));
    assert!(img[2048..].iter().all(|v| *v == 0.0));
}

#[test]
fn unusable_pictures_are_explained() {
    assert!(mnist_digit(&[], 0, 0).unwrap_err().contains("empty"));
    assert!(mnist_digit(&[0; 10], 2, 2).unwrap_err().contains("RGBA bytes"));
    let huge = (MAX_PIXELS as f64).sqrt() as usize + 10;
    assert!(cifar_photo(&[], huge, huge).unwrap_err().contains("too large"));
    assert!(mnist_digit(&rgba_from_grey(&vec![255u8; 40 * 40]), 40, 40).unwrap_err().contains("blank"));
}
