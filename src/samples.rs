//! The sample pack the page shows: the first test images of a data set with their labels, and
//! the class each committed model gives them (a test recomputes those, so stale weights show).
//!
//! `<dataset>-samples.json` describes it; `<dataset>-samples.bin` holds the u8 pixels (CHW per
//! image, image after image), which the page reads without any decoder.

use crate::data::{Dataset, ImageShape};
use crate::models::DatasetKind;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SamplePack {
    pub dataset: DatasetKind,
    pub count: usize,
    pub shape: [usize; 3],
    pub labels: Vec<u8>,
    /// File name of the pixels, beside this JSON.
    pub file: String,
    /// Class the committed model predicts for each image.
    pub predicted: Vec<u8>,
    pub source: String,
}

impl SamplePack {
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| format!("sample pack is not valid: {e}"))
    }

    /// The images as a data set, checking the pixel file's size.
    pub fn dataset(&self, pixels: &[u8]) -> Result<Dataset, String> {
        let shape = ImageShape { channels: self.shape[0], height: self.shape[1], width: self.shape[2] };
        if pixels.len() != self.count * shape.len() {
            return Err(format!(
                "{}: {} bytes, expected {} images of {:?} = {} bytes",
                self.file,
                pixels.len(),
                self.count,
                self.shape,
                self.count * shape.len()
            ));
        }
        Ok(Dataset { shape, images: pixels.to_vec(), labels: self.labels.clone() })
    }
}
