//! Squeezers against values worked out by hand (scipy.ndimage.median_filter(mode='reflect')
//! semantics, numpy's rint), borders included, and their gradients.

use advlab::squeezers::{bit_depth, bit_depth_substitute, median_smooth, symmetric_pad, Squeezer};
use burn::prelude::*;

fn img(values: &[f32], c: usize, h: usize, w: usize) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values.to_vec(), [1, c, h, w]), &Device::flex())
}

fn vals(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32]) {
    assert!(a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} vs {b:?}");
}

#[test]
fn bit_depth_by_hand() {
    let x = img(&[0.2, 0.5, 0.51, 1.0, 0.0, 0.7857143, 0.3, 0.93], 1, 2, 4);
    // 1 bit: rint(x): 0.5 is a tie and goes to the even 0 (numpy's rint).
    close(&vals(bit_depth(x.clone(), 1)), &[0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    // 3 bits: rint(7x) / 7: 1.4->1, 3.5->4 (tie to even), 3.57->4, 7, 0, 5.5->6 (tie to even), 2.1->2, 6.51->7.
    close(&vals(bit_depth(x, 3)), &[1.0 / 7.0, 4.0 / 7.0, 4.0 / 7.0, 1.0, 0.0, 6.0 / 7.0, 2.0 / 7.0, 1.0]);
}

#[test]
fn bit_depth_substitute_rounds_forward_and_passes_gradients_through() {
    let d = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(vec![0.2f32, 0.6, 0.9, 0.4], [1, 1, 2, 2]), &d).require_grad();
    let y = bit_depth_substitute(x.clone(), 1);
    close(&vals(y.clone().inner()), &[0.0, 1.0, 1.0, 0.0]);
    let weights = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &d);
    let grads = (y * weights).sum().backward();
    close(&vals(x.grad(&grads).unwrap()), &[1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn symmetric_padding_mirrors_the_edge() {
    // [1 2 3] padded by 2 / 1: 2 1 | 1 2 3 | 3 (scipy 'reflect' = numpy 'symmetric').
    let x = img(&[1.0, 2.0, 3.0], 1, 1, 3);
    close(&vals(symmetric_pad(x.clone(), 3, 2, 1)), &[2.0, 1.0, 1.0, 2.0, 3.0, 3.0]);
    // Wider than the image: the mirror repeats (3 2 1 | 1 2 3 | 3 2 1 1).
    close(&vals(symmetric_pad(x, 3, 3, 4)), &[3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 1.0]);
}

const GRID: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

#[test]
fn median_3x3_with_reflected_borders() {
    // scipy.ndimage.median_filter(np.arange(1, 10).reshape(3, 3), size=3, mode='reflect').
    // Corner (0, 0) sees 1 1 2 / 1 1 2 / 4 4 5 -> sorted 1 1 1 1 [2] 2 4 4 5.
    close(&vals(median_smooth(img(&GRID, 1, 3, 3), 3, 3)), &[2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 8.0]);
}

#[test]
fn median_2x2_uses_scipy_anchor_and_rank() {
    // An even window covers offsets -1..=0; the result is the element of rank 2 of 4 (the upper
    // median). (1, 1) sees 1 2 4 5 -> 4; (0, 2) sees 2 3 / 2 3 -> 3; (2, 0) sees 4 4 7 7 -> 7.
    close(&vals(median_smooth(img(&GRID, 1, 3, 3), 2, 2)), &[1.0, 2.0, 3.0, 4.0, 4.0, 5.0, 7.0, 7.0, 8.0]);
}

#[test]
fn median_1x3_is_per_row_and_per_channel() {
    // Two channels; a 1-wide, 3-high window runs down the columns of each channel separately.
    let mut two = GRID.to_vec();
    two.extend(GRID.iter().map(|v| 10.0 - v));
    let out = vals(median_smooth(img(&two, 2, 3, 3), 1, 3));
    // Column 0 of channel 0: 1 4 7 -> (1 1 4)=1, (1 4 7)=4, (4 7 7)=7.
    close(&out[..9], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    close(&out[9..], &[9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
    let spiky = img(&[0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 5.0, 0.0, 5.0], 1, 3, 3);
    // The spike inside the image disappears; a value on the bottom edge survives, because the
    // mirrored border repeats it (rows 1, 2, 2 -> 0 5 5).
    close(&vals(median_smooth(spiky, 1, 3)), &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 5.0]);
}

#[test]
fn median_gradient_reaches_the_selected_pixel() {
    let d = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(GRID.to_vec(), [1, 1, 3, 3]), &d).require_grad();
    let y = median_smooth(x.clone(), 3, 3);
    // Only the centre output (median 5, the centre pixel) contributes.
    let pick = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], [1, 1, 3, 3]), &d);
    let grads = (y * pick).sum().backward();
    close(&vals(x.grad(&grads).unwrap()), &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    // Output (0, 1) is 3, a border pixel: the gradient goes to pixel (0, 2).
    let x2 = Tensor::<4>::from_data(TensorData::new(GRID.to_vec(), [1, 1, 3, 3]), &d).require_grad();
    let pick = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1, 1, 3, 3]), &d);
    let grads = (median_smooth(x2.clone(), 3, 3) * pick).sum().backward();
    let g = vals(x2.grad(&grads).unwrap());
    assert!((g.iter().sum::<f32>() - 1.0).abs() < 1e-6 && (g[2] - 1.0).abs() < 1e-6, "{g:?}");
}

#[test]
fn squeezer_names_and_dispatch() {
    let s = Squeezer::BitDepth { bits: 3 };
    assert_eq!(s.name(), "3-bit depth");
    close(&vals(s.apply(img(&[0.2], 1, 1, 1))), &[1.0 / 7.0]);
    assert_eq!(Squeezer::Median { width: 2, height: 2 }.name(), "2x2 median");
    let json = serde_json::to_string(&Squeezer::Median { width: 3, height: 3 }).unwrap();
    assert_eq!(json, r#"{"kind":"median","width":3,"height":3}"#);
}
