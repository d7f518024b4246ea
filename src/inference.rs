//! Running a classifier: batching [0, 1] pixels into tensors and reading probabilities back.
//! Reads are async because a browser cannot block on the GPU; native callers use
//! `pollster::block_on`.

use crate::data::{Dataset, ImageShape};
use crate::models::Classifier;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

/// Error reading a tensor back from the device (a lost GPU device ends up here).
pub fn read_error(e: impl std::fmt::Debug) -> String {
    format!("reading results from the device failed: {e:?}")
}

/// A batch of images ([0, 1] floats, CHW, one after the other) as a [n, c, h, w] tensor.
pub fn to_tensor(pixels: &[f32], shape: ImageShape, device: &Device) -> Tensor<4> {
    let n = pixels.len() / shape.len();
    assert_eq!(n * shape.len(), pixels.len(), "pixel buffer is not a whole number of images");
    Tensor::from_data(TensorData::new(pixels.to_vec(), [n, shape.channels, shape.height, shape.width]), device)
}

/// Images `start..end` of a data set as a tensor.
pub fn dataset_tensor(data: &Dataset, start: usize, end: usize, device: &Device) -> Tensor<4> {
    let n = data.shape.len();
    let pixels: Vec<f32> = data.images[start * n..end * n].iter().map(|&p| p as f32 / 255.0).collect();
    to_tensor(&pixels, data.shape, device)
}

pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    let data = t.into_data_async().await.map_err(read_error)?;
    data.convert::<f32>().try_to_vec::<f32>().map_err(read_error)
}

/// Softmax probabilities of every image, row after row.
pub async fn probabilities(model: &Classifier, x: Tensor<4>) -> Result<Vec<f32>, String> {
    read_f32(softmax(model.forward(x), 1)).await
}

/// Index of the largest value of each row of `values` (rows of `classes`).
pub fn argmax_rows(values: &[f32], classes: usize) -> Vec<usize> {
    values
        .chunks(classes)
        .map(|row| row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best }))
        .collect()
}

/// Predicted classes of a whole data set, in batches.
pub async fn predict_dataset(model: &Classifier, data: &Dataset, batch: usize, device: &Device) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(data.len());
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch).min(data.len());
        let logits = read_f32(model.forward(dataset_tensor(data, start, end, device))).await?;
        out.extend(argmax_rows(&logits, logits.len() / (end - start)));
        start = end;
    }
    Ok(out)
}

/// Fraction of a data set classified correctly.
pub async fn accuracy(model: &Classifier, data: &Dataset, batch: usize, device: &Device) -> Result<f64, String> {
    let predicted = predict_dataset(model, data, batch, device).await?;
    let correct = predicted.iter().zip(&data.labels).filter(|(p, l)| **p == **l as usize).count();
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// One-hot rows of `indices`, built on the host (burn's `one_hot` reads back synchronously,
/// which WebGPU forbids).
pub fn onehot(indices: &[usize], classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; indices.len() * classes];
    for (i, &y) in indices.iter().enumerate() {
        v[i * classes + y] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [indices.len(), classes]), device)
}

/// Cross-entropy of logits against one-hot rows, per image: -sum_k onehot_k log softmax(z)_k.
pub fn cross_entropy(logits: Tensor<2>, onehot: Tensor<2>) -> Tensor<1> {
    let n = logits.dims()[0];
    (log_softmax(logits, 1) * onehot).sum_dim(1).reshape([n]).neg()
}
