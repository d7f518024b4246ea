// Small helpers shared by the page's modules: DOM look-ups, number formats, drawing an image.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function argmax(a) {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

export function fmtProb(p) {
  return Number(p).toFixed(4);
}

export function fmtNum(x, digits = 4) {
  if (x == null || Number.isNaN(Number(x))) return '–';
  const v = Number(x);
  if (v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3)) return v.toExponential(2);
  return v.toFixed(digits);
}

export function fmtBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} kB`;
  return `${n} B`;
}

export function fmtMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** Draws a CHW float image with values in [0,1] onto a canvas of its native size. */
export function drawCHW(canvas, pixels, [c, h, w]) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const plane = h * w;
  for (let i = 0; i < plane; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = pixels[(c === 1 ? 0 : ch) * plane + i];
      img.data[4 * i + ch] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

export function clearCanvas(canvas) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
}
