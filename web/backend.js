// The backend badge: which backend computes (WebGPU, WebGPU on a software adapter, or the CPU
// fallback), why, in a sentence; and a control to switch (a reload with ?backend=webgpu|cpu).

import { $ } from './util.js';
import { params } from './state.js';

export function backendLabel(info) {
  if (info.backend === 'webgpu') return info.software ? 'WebGPU (software adapter)' : 'WebGPU';
  return 'CPU fallback';
}

/** `info`: {backend, reason, note, software, adapter, hasGpuApi} from the worker's init (and probe). */
export function setBackendBadge(info) {
  const b = $('#backend');
  b.dataset.backend = info.backend;
  b.dataset.software = String(!!info.software);
  b.textContent = backendLabel(info);
  const why = info.reason || (info.backend === 'webgpu' ? 'Computing on the GPU through WebGPU.' : 'Computing on the CPU inside WebAssembly.');
  b.title = why;
  b.setAttribute('aria-label', `Compute backend: ${b.textContent}. ${why}`);
  const reason = $('#backend-reason');
  reason.textContent = why;
  const sw = $('#backend-switch');
  const other = info.backend === 'webgpu' ? 'cpu' : 'webgpu';
  // WebGPU is offered only where the browser has it at all.
  sw.hidden = other === 'webgpu' && !info.hasGpuApi;
  sw.dataset.to = other;
  sw.textContent = other === 'cpu' ? 'Use the CPU fallback' : 'Use WebGPU';
  sw.title = `Reload the page with ?backend=${other}`;
}

export function setBackendUnavailable() {
  const b = $('#backend');
  b.textContent = 'unavailable';
  b.dataset.backend = 'none';
}

/** Reloads the page with ?backend=<to>, keeping the other parameters. */
export function switchBackend(to) {
  const u = new URL(location.href);
  u.searchParams.set('backend', to);
  location.href = u.href;
}

/** The visitor's wish: auto (default), webgpu, cpu, or measure (probe both). */
export function backendPreference() {
  const v = params.get('backend');
  return ['webgpu', 'cpu', 'measure'].includes(v) ? v : 'auto';
}

export function setupBackendSwitch() {
  $('#backend-switch').addEventListener('click', (ev) => switchBackend(ev.currentTarget.dataset.to));
}
