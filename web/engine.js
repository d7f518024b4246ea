// The compute engine's client: a module Web Worker (web/worker.js) behind a small
// promise-wrapped message protocol (requests carry an id; progress and the answer come back
// with it). The protocol itself is described at the top of worker.js.

export class Engine {
  constructor(url, onFatal) {
    this.nextId = 1;
    this.pending = new Map();
    this.onFatal = onFatal;
    try {
      this.worker = new Worker(url, { type: 'module', name: 'advlab-compute' });
    } catch (e) {
      throw new Error(`this browser cannot start a module Web Worker: ${e.message ?? e}`);
    }
    this.worker.onmessage = (ev) => this.receive(ev.data);
    this.worker.onerror = (ev) => {
      ev.preventDefault?.();
      const detail = ev.message || 'the worker script failed to load or crashed';
      this.failAll(new Error(`compute worker error: ${detail}`), true);
    };
    this.worker.onmessageerror = () => this.failAll(new Error('a message from the compute worker could not be read'), false);
  }

  failAll(err, fatal) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (fatal) this.onFatal?.(err);
  }

  receive(msg) {
    if (!msg) return;
    const p = this.pending.get(msg.id);
    if (!p) {
      if (msg.type === 'error') console.warn('advlab worker:', msg.message);
      return;
    }
    if (msg.type === 'progress') {
      p.onProgress?.(msg);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg);
    else {
      const err = new Error(msg.message ?? 'unknown error in the compute worker');
      err.fatal = !!msg.fatal;
      err.status = msg.status;
      p.reject(err);
      if (msg.fatal) this.onFatal?.(err);
    }
  }

  /** Sends a request; returns {id, promise}. */
  send(type, payload = {}, { transfer = [], onProgress = null } = {}) {
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
    });
    this.worker.postMessage({ ...payload, id, type }, transfer);
    return { id, promise };
  }

  request(type, payload, opts) {
    return this.send(type, payload, opts).promise;
  }

  cancel(id) {
    this.worker.postMessage({ type: 'cancel', target: id });
  }
}
