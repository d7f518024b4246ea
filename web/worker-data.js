// Helpers of the compute worker (web/worker.js): plain copies of what wasm returns (so that no
// view on wasm memory is transferred and no field a newer engine adds is lost), error messages,
// and downloads with progress.

/** Reads a field of a value from wasm: a plain object, a Map (serde-wasm-bindgen) or a class with getters. */
export function field(o, k) {
  if (o == null) return undefined;
  if (o instanceof Map && o.has(k)) return o.get(k);
  return o[k]; // also properties set on a Map, and getters of wasm-bindgen classes
}

/** Copies the named fields out of a wasm value into a plain object. */
export function pick(o, keys) {
  const out = {};
  for (const k of keys) {
    const v = field(o, k);
    out[k] = typeof v === 'bigint' ? Number(v) : v;
  }
  return out;
}

export function list(v) {
  return v == null ? v : Array.from(v);
}

/** A fresh Float32Array copy (never a view on wasm memory, which must not be transferred). */
export function f32(v) {
  if (v == null) return null;
  return Float32Array.from(v);
}

/**
 * A deep copy of a value from wasm as plain data: objects (serde output or wasm-bindgen classes)
 * with all their own fields, Maps as objects, typed arrays as fresh copies (collected in
 * `transfer`). Copying every field, not a fixed list, keeps what a newer engine adds.
 */
export function plain(v, transfer = []) {
  if (v == null) return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) {
    const copy = new v.constructor(v);
    transfer.push(copy.buffer);
    return copy;
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, transfer));
  const out = {};
  if (v instanceof Map) {
    for (const [k, x] of v) out[k] = plain(x, transfer);
    return out;
  }
  for (const k of Object.keys(v)) out[k] = plain(v[k], transfer);
  return out;
}

export function errorMessage(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message || String(e);
  if (typeof e === 'object' && 'message' in e) return String(e.message);
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

export function isFatal(e) {
  // A Rust panic (panic = "abort") or a trap leaves the instance unusable.
  return e instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError|memory access out of bounds/i.test(errorMessage(e));
}

export async function fetchOk(url, what) {
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new Error(`could not download ${what} (${url}): ${errorMessage(e)}`);
  }
  if (!resp.ok) {
    const err = new Error(`could not download ${what} (${url}): HTTP ${resp.status} ${resp.statusText}`.trim());
    err.status = resp.status;
    throw err;
  }
  return resp;
}

export async function readWithProgress(resp, onProgress) {
  const total = Number(resp.headers.get('Content-Length')) || 0;
  if (!resp.body || !resp.body.getReader) return new Uint8Array(await resp.arrayBuffer());
  const reader = resp.body.getReader();
  const chunks = [];
  let loaded = 0;
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    const now = Date.now();
    if (now - last > 100) {
      last = now;
      onProgress(loaded, total);
    }
  }
  onProgress(loaded, total);
  const out = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A squeeze report with plain fields and fresh (transferable) arrays. */
export function plainReport(raw) {
  const r = pick(raw, ['threshold', 'score', 'flagged', 'predicted', 'probs']);
  r.probs = f32(r.probs);
  r.flagged = !!r.flagged;
  r.views = Array.from(field(raw, 'views') ?? [], (v) => {
    const o = pick(v, ['name', 'image', 'probs', 'predicted', 'l1', 'in_detector', 'preprocessing']);
    o.image = f32(o.image);
    o.probs = f32(o.probs);
    o.in_detector = !!o.in_detector;
    o.preprocessing = o.preprocessing ?? null;
    return o;
  });
  const transfer = [r.probs, ...r.views.flatMap((v) => [v.image, v.probs])].filter(Boolean).map((a) => a.buffer);
  return { report: r, transfer };
}

