// The attack's pictures: the loss / L2 chart over the attack's steps (binary-search rounds of
// C&W marked) and the perturbation heat map on a stated scale.

import { fmtNum } from './util.js';

/** One 8-bit level: a change smaller than this is shown faint, never as full colour. */
export const MIN_PERTURBATION_SCALE = 1 / 255;

/**
 * Heat map of adv - orig (mean over channels): red positive, blue negative, white zero. Full
 * colour is the largest change, or one 8-bit level when every change is smaller. Returns
 * {maxAbs, scale}.
 */
export function drawPerturbation(canvas, orig, adv, [c, h, w]) {
  canvas.width = w;
  canvas.height = h;
  const plane = h * w;
  const delta = new Float32Array(plane);
  let maxAbs = 0;
  for (let i = 0; i < plane; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s += adv[ch * plane + i] - orig[ch * plane + i];
    delta[i] = s / c;
    maxAbs = Math.max(maxAbs, Math.abs(delta[i]));
  }
  const scale = Math.max(maxAbs, MIN_PERTURBATION_SCALE);
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < plane; i++) {
    const t = Math.min(1, Math.abs(delta[i]) / scale);
    const fade = Math.round(255 * (1 - t));
    const pos = delta[i] >= 0;
    img.data[4 * i] = pos ? 255 : fade;
    img.data[4 * i + 1] = fade;
    img.data[4 * i + 2] = pos ? fade : 255;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return { maxAbs, scale };
}

export function describeScale({ maxAbs, scale }) {
  if (maxAbs === 0) return '(no change)';
  if (maxAbs < MIN_PERTURBATION_SCALE) return `(largest change ±${fmtNum(maxAbs, 3)}, under one 8-bit level: drawn faint; full colour = ±1/255)`;
  return `(full colour = ±${fmtNum(scale, 3)})`;
}

/**
 * Draws loss (left axis) and L2 (right axis) against the attack's step. `points`: [{step, loss,
 * l2}]; `totalSteps`: the x-axis' end; `roundSteps`: the length of a binary-search round (C&W,
 * several rounds one after another) whose boundaries are marked, or null.
 */
export function drawChart(cv, points, { totalSteps = 0, roundSteps = null } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = cv.clientWidth || 360;
  const cssH = cv.clientHeight || 180;
  if (cv.width !== Math.round(cssW * dpr) || cv.height !== Math.round(cssH * dpr)) {
    cv.width = Math.round(cssW * dpr);
    cv.height = Math.round(cssH * dpr);
  }
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const pad = { l: 48, r: 48, t: 10, b: 30 };
  const W = cssW - pad.l - pad.r;
  const H = cssH - pad.t - pad.b;
  const styles = getComputedStyle(document.documentElement);
  const axis = styles.getPropertyValue('--muted').trim() || '#888';
  const cLoss = styles.getPropertyValue('--loss').trim() || '#e67e22';
  const cL2 = styles.getPropertyValue('--l2').trim() || '#2c7be5';
  ctx.strokeStyle = axis;
  ctx.lineWidth = 1;
  ctx.strokeRect(pad.l, pad.t, W, H);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = axis;
  const marks = { rounds: [] };
  cv.dataset.points = String(points.length);
  if (points.length === 0) {
    ctx.fillText('starts with the attack', pad.l + 8, pad.t + 16);
    cv.dataset.rounds = '';
    return marks;
  }
  const last = Math.max(totalSteps, ...points.map((p) => p.step), 1);
  const xOf = (step) => pad.l + (last <= 1 ? W / 2 : ((step - 1) / (last - 1)) * W);
  // Binary-search rounds: C&W restarts its optimisation with a new constant, so the curves jump.
  if (roundSteps && last > roundSteps) {
    ctx.save();
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = axis;
    for (let s = roundSteps; s < last; s += roundSteps) {
      const x = xOf(s + 0.5);
      ctx.beginPath();
      ctx.moveTo(x, pad.t);
      ctx.lineTo(x, pad.t + H);
      ctx.stroke();
      marks.rounds.push(s);
    }
    ctx.restore();
    ctx.textAlign = 'left';
    ctx.fillText('┆ new round of the constant search', pad.l + 4, pad.t + 11);
  }
  cv.dataset.rounds = marks.rounds.join(' ');
  const series = (key, color, side) => {
    const finite = points.filter((p) => Number.isFinite(p[key]));
    if (!finite.length) return;
    const vals = finite.map((p) => p[key]);
    const lo = Math.min(0, ...vals);
    let hi = Math.max(...vals);
    if (hi - lo < 1e-12) hi = lo + 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    finite.forEach((p, i) => {
      const y = pad.t + H - ((p[key] - lo) / (hi - lo)) * H;
      if (i) ctx.lineTo(xOf(p.step), y);
      else ctx.moveTo(xOf(p.step), y);
    });
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.textAlign = side === 'left' ? 'right' : 'left';
    const x = side === 'left' ? pad.l - 4 : pad.l + W + 4;
    ctx.fillText(fmtNum(hi, 2), x, pad.t + 9);
    ctx.fillText(fmtNum(lo, 2), x, pad.t + H);
    // Axis title, written along the axis.
    ctx.save();
    ctx.translate(side === 'left' ? 10 : cssW - 10, pad.t + H / 2);
    ctx.rotate(side === 'left' ? -Math.PI / 2 : Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText(key === 'loss' ? 'loss' : 'L2 distance', 0, 0);
    ctx.restore();
  };
  series('loss', cLoss, 'left');
  series('l2', cL2, 'right');
  ctx.fillStyle = axis;
  ctx.textAlign = 'left';
  ctx.fillText('1', pad.l, pad.t + H + 12);
  ctx.textAlign = 'right';
  ctx.fillText(String(last), pad.l + W, pad.t + H + 12);
  ctx.textAlign = 'center';
  ctx.fillText('step', pad.l + W / 2, cssH - 4);
  ctx.textAlign = 'left';
  return marks;
}
