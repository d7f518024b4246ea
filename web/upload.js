// Uploads: checked before anything is decoded (file size, then the width and height from the
// file's header), decoded at most MAX_UPLOAD_SIDE on a side, flattened when transparent (on black
// for light strokes, on white for dark ones, with a note saying so) and refused with a message
// when they look blank (e.g. a near-black 16-bit PNG).

import { $ } from './util.js';
import { fmtBytes } from './util.js';
import { state } from './state.js';
import { showError, clearError } from './errors.js';
import { predictRgba } from './prediction.js';
import { markSelected } from './samples.js';
import { readImageSize } from './image-header.js';

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
export const MAX_UPLOAD_PIXELS = 40_000_000; // the library's limit (preprocess::MAX_PIXELS); decoding more takes seconds and gigabytes
const MAX_UPLOAD_SIDE = 4096; // larger images are scaled down while decoding
const HEADER_BYTES = 256 * 1024; // a JPEG's metadata may come before its frame header
// The darkest and brightest pixel must differ by at least this much (of 255) or the image
// looks blank: MNIST needs a digit (the engine's own test is 10%), a photo some contrast.
const MIN_CONTRAST = { mnist: 26, cifar10: 8 };

const luma = (d, o) => 0.299 * d[o] + 0.587 * d[o + 1] + 0.114 * d[o + 2];

/** How transparent an image is and what colour its visible pixels are. */
function transparency(data) {
  let clear = 0;
  let ink = 0;
  let weight = 0;
  for (let o = 0; o < data.length; o += 4) {
    const a = data[o + 3];
    if (a < 250) clear++;
    ink += luma(data, o) * a;
    weight += a;
  }
  return { share: clear / (data.length / 4), inkLuma: weight > 0 ? ink / weight : 0 };
}

function contrast(data) {
  let lo = 255;
  let hi = 0;
  for (let o = 0; o < data.length; o += 4) {
    const v = luma(data, o);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return { lo: Math.round(lo), hi: Math.round(hi) };
}

export async function handleUpload(file) {
  clearError();
  if (!file) return;
  const ds = state.dataset;
  const name = file.name || 'image';
  if (file.size === 0) return showError(`“${name}” is empty.`);
  if (file.size > MAX_UPLOAD_BYTES) {
    return showError(`“${name}” is ${fmtBytes(file.size)}; images up to ${fmtBytes(MAX_UPLOAD_BYTES)} are accepted.`);
  }
  if (file.type && !file.type.startsWith('image/')) {
    return showError(`“${name}” is not an image (type ${file.type}).`);
  }
  const header = readImageSize(new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer()));
  if (header && header.width * header.height > MAX_UPLOAD_PIXELS) {
    const mp = ((header.width * header.height) / 1e6).toFixed(0);
    return showError(
      `“${name}” is ${header.width}×${header.height} pixels (${mp} megapixels, read from its ${header.format} header); ` +
        `images up to ${MAX_UPLOAD_PIXELS / 1e6} megapixels are accepted. Scale it down and upload it again.`,
    );
  }
  if (header && (!header.width || !header.height)) return showError(`“${name}” has no pixels.`);
  let bitmap;
  try {
    const opts = { colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
    if (header && Math.max(header.width, header.height) > MAX_UPLOAD_SIDE) {
      // Scale while decoding: the full-size image never exists in memory. Only the width is
      // given, so the aspect ratio is kept even where EXIF orientation swaps the sides (the
      // canvas below then brings the longer side to MAX_UPLOAD_SIDE).
      const s = MAX_UPLOAD_SIDE / Math.max(header.width, header.height);
      Object.assign(opts, { resizeWidth: Math.max(1, Math.round(header.width * s)), resizeQuality: 'medium' });
    }
    bitmap = await createImageBitmap(file, opts);
  } catch {
    return showError(`“${name}” could not be read as an image (is it a PNG, JPEG, GIF or WebP file?).`);
  }
  try {
    let { width, height } = bitmap;
    if (!width || !height) return showError(`“${name}” has no pixels.`);
    const scale = Math.min(1, MAX_UPLOAD_SIDE / Math.max(width, height));
    width = Math.max(1, Math.round(width * scale));
    height = Math.max(1, Math.round(height * scale));
    const cv = document.createElement('canvas');
    cv.width = width;
    cv.height = height;
    const ctx = cv.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0, width, height);
    let img = ctx.getImageData(0, 0, width, height);
    let note = '';
    const t = transparency(img.data);
    if (t.share > 0.01) {
      // Light strokes go on black, dark ones on white (the engine turns a light background
      // into MNIST's black one): either way the strokes stay what the eye sees.
      const light = t.inkLuma > 127;
      ctx.fillStyle = light ? '#000' : '#fff';
      ctx.fillRect(0, 0, width, height);
      ctx.drawImage(bitmap, 0, 0, width, height);
      img = ctx.getImageData(0, 0, width, height);
      note = light
        ? `“${name}” is transparent: its light strokes were put on black${ds === 'mnist' ? ', as MNIST digits are' : ''}.`
        : `“${name}” is transparent: its dark strokes were put on white${ds === 'mnist' ? ' (then inverted to light on black, as MNIST digits are)' : ''}.`;
    }
    const { lo, hi } = contrast(img.data);
    if (hi - lo < (MIN_CONTRAST[ds] ?? 8)) {
      const deep = header?.bitDepth === 16 ? ' (a 16-bit image: its values are all near one level once shown with 8 bits)' : '';
      return showError(
        `“${name}” looks blank: its darkest and brightest pixels differ by only ${hi - lo} of 255 levels${deep}. ` +
          `There is nothing for the model to classify; try an image with ${ds === 'mnist' ? 'a visible digit' : 'more contrast'}.`,
      );
    }
    markSelected(null);
    await predictRgba(new Uint8Array(img.data.buffer), width, height, `upload:${name}`, note);
  } finally {
    bitmap.close?.();
  }
}

export function setupUpload() {
  const upload = $('#upload');
  upload.addEventListener('change', async () => {
    const file = upload.files?.[0];
    try {
      await handleUpload(file);
    } finally {
      upload.value = ''; // the same file can be chosen again
    }
  });
}
