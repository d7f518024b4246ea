//! Turning a picture someone drew, uploaded or photographed into what a model takes, the same
//! way in the page (RGBA from a canvas) and in `lab predict --image` (decoded natively).
//!
//! MNIST digits are white on black, their bounding box scaled to fit 20x20 (aspect kept) and
//! placed in a 28x28 frame so that their centre of mass is at the centre (LeCun et al.).
//! CIFAR-10 photos are scaled so the shorter side is 32 and centre-cropped to 32x32.
//! A picture already of the model's size is taken pixel for pixel, so a downloaded adversarial
//! PNG comes back exactly as it was saved.

use crate::data::ImageShape;
use crate::models::DatasetKind;

/// Largest picture accepted (pixels): enough for a phone photo, bounded so a hostile file
/// cannot exhaust memory.
pub const MAX_PIXELS: usize = 40_000_000;

fn check(rgba: &[u8], width: usize, height: usize) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err("the image is empty (0 pixels wide or high)".into());
    }
    if width * height > MAX_PIXELS {
        return Err(format!("the image is too large ({width}x{height}); the limit is {MAX_PIXELS} pixels"));
    }
    if rgba.len() != width * height * 4 {
        return Err(format!("expected {} RGBA bytes for {width}x{height}, got {}", width * height * 4, rgba.len()));
    }
    Ok(())
}

/// Channel `c` of RGBA as [0, 1] floats, composited on white where transparent (a drawing on
/// a transparent canvas reads as ink on paper).
fn channel(rgba: &[u8], c: usize) -> Vec<f32> {
    rgba.chunks_exact(4)
        .map(|p| {
            let a = p[3] as f32 / 255.0;
            (p[c] as f32 / 255.0) * a + (1.0 - a)
        })
        .collect()
}

fn grey(rgba: &[u8]) -> Vec<f32> {
    let (r, g, b) = (channel(rgba, 0), channel(rgba, 1), channel(rgba, 2));
    // Exact for grey pictures (r = g = b), so a saved 8-bit digit reloads bit for bit.
    r.iter().zip(&g).zip(&b).map(|((r, g), b)| if r == g && g == b { *r } else { 0.299 * r + 0.587 * g + 0.114 * b }).collect()
}

/// Area-averaging resize of one channel (each output pixel is the mean of the input area it covers).
pub fn resize_area(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    let (fx, fy) = (sw as f64 / dw as f64, sh as f64 / dh as f64);
    let mut out = vec![0f32; dw * dh];
    for oy in 0..dh {
        let (y0, y1) = (oy as f64 * fy, (oy + 1) as f64 * fy);
        for ox in 0..dw {
            let (x0, x1) = (ox as f64 * fx, (ox + 1) as f64 * fx);
            let (mut acc, mut area) = (0f64, 0f64);
            let mut y = y0.floor() as usize;
            while (y as f64) < y1 && y < sh {
                let wy = (y1.min(y as f64 + 1.0) - y0.max(y as f64)).max(0.0);
                let mut x = x0.floor() as usize;
                while (x as f64) < x1 && x < sw {
                    let wx = (x1.min(x as f64 + 1.0) - x0.max(x as f64)).max(0.0);
                    acc += src[y * sw + x] as f64 * wx * wy;
                    area += wx * wy;
                    x += 1;
                }
                y += 1;
            }
            out[oy * dw + ox] = if area > 0.0 { (acc / area) as f32 } else { 0.0 };
        }
    }
    out
}

/// A centred 28x28 MNIST-style digit (1x28x28, [0, 1]).
pub fn mnist_digit(rgba: &[u8], width: usize, height: usize) -> Result<Vec<f32>, String> {
    check(rgba, width, height)?;
    let mut g = grey(rgba);
    if (width, height) == (28, 28) {
        return Ok(g);
    }
    // Ink is whatever differs from the background; the border tells which that is.
    let border: Vec<f32> = (0..width)
        .flat_map(|x| [g[x], g[(height - 1) * width + x]])
        .chain((0..height).flat_map(|y| [g[y * width], g[y * width + width - 1]]))
        .collect();
    if border.iter().sum::<f32>() / border.len() as f32 > 0.5 {
        g.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    let max = g.iter().cloned().fold(0.0, f32::max);
    if max < 0.1 {
        return Err("the image looks blank: no digit found".into());
    }
    // Faint noise must not stretch the bounding box.
    let cut = 0.2 * max;
    g.iter_mut().for_each(|v| *v = if *v < cut { 0.0 } else { (*v - cut) / (max - cut) });
    let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if g[y * width + x] > 0.0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop: Vec<f32> = (y0..=y1).flat_map(|y| g[y * width + x0..=y * width + x1].to_vec()).collect();
    let scale = 20.0 / bw.max(bh) as f64;
    let (dw, dh) = (((bw as f64 * scale).round() as usize).max(1), ((bh as f64 * scale).round() as usize).max(1));
    let digit = resize_area(&crop, bw, bh, dw, dh);
    // Centre of mass of the scaled digit goes to (14, 14).
    let (mut mx, mut my, mut mass) = (0f64, 0f64, 0f64);
    for y in 0..dh {
        for x in 0..dw {
            let v = digit[y * dw + x] as f64;
            mx += v * (x as f64 + 0.5);
            my += v * (y as f64 + 0.5);
            mass += v;
        }
    }
    let (ox, oy) = ((14.0 - mx / mass).round() as i64, (14.0 - my / mass).round() as i64);
    let mut out = vec![0f32; 28 * 28];
    for y in 0..dh {
        for x in 0..dw {
            let (tx, ty) = (x as i64 + ox, y as i64 + oy);
            if (0..28).contains(&tx) && (0..28).contains(&ty) {
                out[ty as usize * 28 + tx as usize] = digit[y * dw + x].clamp(0.0, 1.0);
            }
        }
    }
    Ok(out)
}

/// A 3x32x32 CIFAR-10 input: scale the shorter side to 32, crop the centre.
pub fn cifar_photo(rgba: &[u8], width: usize, height: usize) -> Result<Vec<f32>, String> {
    check(rgba, width, height)?;
    let side = width.min(height);
    let (cx, cy) = ((width - side) / 2, (height - side) / 2);
    let mut out = Vec::with_capacity(3 * 32 * 32);
    for c in 0..3 {
        let plane = channel(rgba, c);
        let square: Vec<f32> = (cy..cy + side).flat_map(|y| plane[y * width + cx..y * width + cx + side].to_vec()).collect();
        out.extend(resize_area(&square, side, side, 32, 32));
    }
    Ok(out)
}

/// The model input of a data set for a picture.
pub fn prepare(dataset: DatasetKind, rgba: &[u8], width: usize, height: usize) -> Result<Vec<f32>, String> {
    match dataset {
        DatasetKind::Mnist => mnist_digit(rgba, width, height),
        DatasetKind::Cifar10 => cifar_photo(rgba, width, height),
    }
}

/// Model input (CHW, [0, 1]) to 8-bit RGBA, e.g. for a PNG; grey images go to all three channels.
pub fn to_rgba(pixels: &[f32], shape: ImageShape) -> Vec<u8> {
    let plane = shape.height * shape.width;
    let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    (0..plane)
        .flat_map(|p| {
            let rgb: [u8; 3] = if shape.channels == 1 {
                [q(pixels[p]); 3]
            } else {
                [q(pixels[p]), q(pixels[plane + p]), q(pixels[2 * plane + p])]
            };
            [rgb[0], rgb[1], rgb[2], 255]
        })
        .collect()
}

/// What a PNG holds: each pixel rounded to the nearest of 256 levels.
pub fn quantize_8bit(pixels: &[f32]) -> Vec<f32> {
    pixels.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0).collect()
}
