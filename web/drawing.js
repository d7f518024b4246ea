// The drawing canvas (mouse, pen or touch): a stroke ends in a prediction of the drawing.

import { $ } from './util.js';
import { clearError } from './errors.js';
import { predictRgba } from './prediction.js';
import { markSelected } from './samples.js';
import { inputsOpen } from './ui.js';

const draw = {
  canvas: null,
  ctx: null,
  active: null, // pointerId
  last: null,
  dirty: false,
};

export function clearDrawing() {
  const { ctx, canvas } = draw;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  draw.dirty = false;
}

function canvasPoint(ev) {
  const r = draw.canvas.getBoundingClientRect();
  return {
    x: ((ev.clientX - r.left) / r.width) * draw.canvas.width,
    y: ((ev.clientY - r.top) / r.height) * draw.canvas.height,
  };
}

function strokeTo(p) {
  const { ctx } = draw;
  ctx.strokeStyle = ctx.fillStyle = $('#draw-color').value;
  ctx.lineWidth = Number($('#draw-size').value);
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.beginPath();
  if (draw.last) {
    ctx.moveTo(draw.last.x, draw.last.y);
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
  } else {
    ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
  }
  draw.last = p;
  draw.dirty = true;
}

function predictDrawing() {
  if (!draw.dirty) return;
  clearError();
  markSelected(null);
  const { width, height } = draw.canvas;
  const img = draw.ctx.getImageData(0, 0, width, height);
  predictRgba(new Uint8Array(img.data.buffer), width, height, 'drawing');
}

export function setupDrawing() {
  draw.canvas = $('#draw');
  draw.ctx = draw.canvas.getContext('2d', { willReadFrequently: true });
  clearDrawing();
  const c = draw.canvas;
  c.addEventListener('pointerdown', (ev) => {
    // Locked while a data set loads or an attack runs (the attack works on the current input).
    if (document.body.dataset.state !== 'ready' || !inputsOpen() || draw.active != null) return;
    if (ev.pointerType === 'mouse' && ev.button !== 0) return;
    ev.preventDefault();
    draw.active = ev.pointerId;
    draw.last = null;
    try {
      c.setPointerCapture(ev.pointerId);
    } catch {
      /* not an active pointer (synthetic event): strokes still work inside the canvas */
    }
    strokeTo(canvasPoint(ev));
  });
  c.addEventListener('pointermove', (ev) => {
    if (ev.pointerId !== draw.active) return;
    ev.preventDefault();
    const events = ev.getCoalescedEvents?.() ?? [ev];
    for (const e of events.length ? events : [ev]) strokeTo(canvasPoint(e));
  });
  const end = (ev) => {
    if (ev.pointerId !== draw.active) return;
    draw.active = null;
    draw.last = null;
    try {
      if (c.hasPointerCapture?.(ev.pointerId)) c.releasePointerCapture(ev.pointerId);
    } catch {
      /* already released */
    }
    predictDrawing();
  };
  c.addEventListener('pointerup', end);
  c.addEventListener('pointercancel', end);
  c.addEventListener('contextmenu', (ev) => ev.preventDefault());
  $('#draw-clear').addEventListener('click', () => clearDrawing());
}
