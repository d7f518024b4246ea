// Which compute backend the page uses, and why: pure rules shared by the worker (which applies
// them) and the tests. A software WebGPU adapter (SwiftShader, llvmpipe, WARP: the GPU emulated on
// the CPU) is slower than the CPU fallback (burn's Flex backend inside wasm) by a wide margin, so
// it is not used unless asked for; on a real GPU a short probe (a few predictions on each) decides.

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|\bwarp\b/i;

/** Whether a WebGPU adapter (its GPUAdapterInfo fields, plus isFallbackAdapter) is a software one. */
export function isSoftwareAdapter(info) {
  if (!info) return false;
  if (info.isFallbackAdapter) return true;
  return [info.architecture, info.vendor, info.device, info.description].some((s) => typeof s === 'string' && SOFTWARE.test(s));
}

export function adapterName(info) {
  if (!info) return 'none';
  const parts = [info.vendor, info.architecture, info.description || info.device].filter((s) => s && String(s).trim());
  return parts.length ? Array.from(new Set(parts)).join(' / ') : 'unnamed adapter';
}

/**
 * The first choice, before any model is loaded. `preference`: "auto" (default), "webgpu", "cpu"
 * or "measure" (probe both even on a software adapter); `hasGpuApi`: navigator.gpu exists;
 * `adapter`: the adapter's info (null when none was granted). Returns {want, reason, probe}.
 */
export function initialChoice({ preference = 'auto', hasGpuApi, adapter }) {
  if (preference === 'cpu') return { want: 'cpu', reason: 'The CPU fallback was asked for (?backend=cpu).', probe: false };
  if (!hasGpuApi) return { want: 'cpu', reason: 'This browser has no WebGPU, so the page computes on the CPU inside WebAssembly.', probe: false };
  if (!adapter) return { want: 'cpu', reason: 'This browser offers no WebGPU adapter (no usable GPU), so the page computes on the CPU inside WebAssembly.', probe: false };
  const soft = isSoftwareAdapter(adapter);
  if (preference === 'webgpu') {
    return {
      want: 'webgpu',
      reason: soft
        ? `WebGPU was asked for (?backend=webgpu); its adapter is a software one (${adapterName(adapter)}), which emulates a GPU on the CPU and is much slower than the CPU fallback.`
        : `WebGPU was asked for (?backend=webgpu): ${adapterName(adapter)}.`,
      probe: false,
    };
  }
  if (preference === 'measure') return { want: 'webgpu', reason: `Measuring WebGPU (${adapterName(adapter)}) against the CPU fallback.`, probe: true };
  if (soft) {
    return {
      want: 'cpu',
      reason: `The WebGPU adapter is a software one (${adapterName(adapter)}): it emulates a GPU on the CPU and is slower than the CPU fallback, which is used instead.`,
      probe: false,
    };
  }
  return { want: 'webgpu', reason: `Computing on the GPU through WebGPU (${adapterName(adapter)}).`, probe: true };
}

/** After the probe: the faster backend (per prediction, median of a few), with the figures. */
export function probeChoice({ webgpuMs, cpuMs }) {
  const fmt = (ms) => (ms < 10 ? ms.toFixed(1) : String(Math.round(ms)));
  const figures = `${fmt(webgpuMs)} ms per prediction on WebGPU, ${fmt(cpuMs)} ms on the CPU fallback`;
  if (cpuMs < webgpuMs) return { backend: 'cpu', reason: `Measured at start: the CPU fallback is faster here (${figures}), so it is used.` };
  return { backend: 'webgpu', reason: `Measured at start: WebGPU is faster here (${figures}).` };
}

/**
 * The engine's note in plain words: a Rust debug string such as
 * "WebGPU is not available (AdapterUnavailable { device: WgpuDevice ... }); running on ..."
 * loses the parenthesised part.
 */
export function readableNote(note) {
  if (!note) return '';
  return String(note)
    .replace(/\s*\([A-Za-z_:]+\s*[{(][\s\S]*?[})]\s*\)(?=\s*[;.,]|\s*$)/g, '')
    .replace(/\s*\([A-Z][A-Za-z]+(?:::[A-Za-z]+)*\)/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}
