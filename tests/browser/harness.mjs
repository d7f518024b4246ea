// Shared helpers for the headless-browser tests (node --test tests/browser/).
//
// startLab({webgpu}) starts the static server on a free port and launches the system Chromium
// through playwright-core, with WebGPU on SwiftShader (TOOLCHAIN.md) or with WebGPU disabled so the
// page falls back to the CPU backend. It returns {browser, page, url, requests, consoleLines, close}.

import { mkdtemp, access } from 'node:fs/promises';
import { constants as FS } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';
import zlib from 'node:zlib';
import { startServer } from '../../web/serve.mjs';

const execFileP = promisify(execFile);

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = process.env.ADVLAB_CHROMIUM ?? '/usr/bin/chromium';
export const LAB_BIN = resolve(REPO, process.env.ADVLAB_LAB_BIN ?? 'target/release/lab');

const COMMON_FLAGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];
const WEBGPU_FLAGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--enable-unsafe-swiftshader',
];
const NO_GPU_FLAGS = ['--disable-gpu', '--disable-webgpu', '--disable-features=WebGPU,Vulkan'];

async function exists(path) {
  try {
    await access(path, FS.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Why the browser tests cannot run here (a string), or null when they can. */
export async function missingPrerequisites({ needLab = false } = {}) {
  const missing = [];
  if (!(await exists(CHROMIUM))) missing.push(`no Chromium at ${CHROMIUM}`);
  if (!(await exists(join(REPO, 'pkg', 'advlab.js')))) missing.push('pkg/advlab.js missing (build the wasm first)');
  if (!(await exists(join(REPO, 'models', 'mnist.json')))) missing.push('models/mnist.json missing');
  if (needLab && !(await exists(LAB_BIN))) missing.push(`native reference ${LAB_BIN} missing (cargo build --release)`);
  return missing.length ? missing.join('; ') : null;
}

/**
 * Starts server + browser and opens the page.
 * - webgpu: launch with the SwiftShader WebGPU flags (true) or with WebGPU disabled (false)
 * - mock: serve tests/browser/fixtures/mock-advlab.js as pkg/advlab.js and a made-up MNIST model,
 *   so the page logic can be tested without the wasm build
 * - setup(context): install extra routes before the page loads (e.g. corrupt a file)
 * - root: the folder served (default the repository; e.g. a folder holding it under a sub-path)
 */
export async function startLab({ webgpu = true, acceptDownloads = false, path = '', mock = false, setup = null, viewport, root = REPO } = {}) {
  const { server, url } = await startServer({ port: 0, root, quiet: true });
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...COMMON_FLAGS, ...(webgpu ? WEBGPU_FLAGS : NO_GPU_FLAGS)],
      timeout: 60_000,
    });
  } catch (e) {
    server.close();
    throw e;
  }
  const context = await browser.newContext({ acceptDownloads, viewport: viewport ?? { width: 1280, height: 1000 } });
  if (mock) await installMock(context);
  if (setup) await setup(context);
  const page = await context.newPage();
  const requests = [];
  const consoleLines = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  page.on('worker', (w) => {
    w.on('console', (m) => consoleLines.push(`[worker ${m.type()}] ${m.text()}`));
  });
  if (process.env.ADVLAB_TEST_VERBOSE) page.on('console', (m) => console.log(`  browser: ${m.text()}`));
  await page.goto(url + path);

  const close = async () => {
    await browser.close().catch(() => {});
    await new Promise((r) => server.close(r));
    server.closeAllConnections?.();
  };
  return { browser, context, page, url, server, requests, consoleLines, close };
}

/** Waits until the page reports it is ready (backend chosen, model loaded, samples shown). */
export async function waitReady(page, timeout = 180_000) {
  await page.waitForFunction(
    () => {
      const s = document.body.dataset.state;
      return s === 'ready' || s === 'error';
    },
    null,
    { timeout },
  );
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== 'ready') {
    const err = await page.evaluate(() => document.querySelector('#error')?.textContent ?? '');
    throw new Error(`page did not become ready: ${err}`);
  }
}

/** Waits for a prediction newer than `after` (the page's prediction counter) and returns it. */
export async function waitPrediction(page, after = 0, timeout = 120_000) {
  await page.waitForFunction(
    (n) => Number(document.querySelector('#prediction')?.dataset.seq ?? 0) > n,
    after,
    { timeout },
  );
  return readPrediction(page);
}

export async function readPrediction(page) {
  return page.evaluate(() => {
    const el = document.querySelector('#prediction');
    return {
      seq: Number(el.dataset.seq ?? 0),
      predicted: Number(el.dataset.predicted),
      predictedName: document.querySelector('#predicted').textContent.trim(),
      probs: JSON.parse(el.dataset.probs),
      source: el.dataset.source,
    };
  });
}

export async function predictionSeq(page) {
  return page.evaluate(() => Number(document.querySelector('#prediction')?.dataset.seq ?? 0));
}

/** Runs the native reference `lab predict ... --json` and returns its parsed output. */
export async function labPredict(args) {
  const { stdout } = await execFileP(LAB_BIN, ['predict', ...args, '--json'], {
    cwd: REPO,
    timeout: 120_000,
    maxBuffer: 16 << 20,
  });
  const line = stdout.trim().split('\n').filter((l) => l.trim().startsWith('{')).pop();
  if (!line) throw new Error(`no JSON from lab predict ${args.join(' ')}: ${stdout}`);
  return JSON.parse(line);
}

export function assertClose(actual, expected, tol, what = 'value') {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length} != ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      throw new Error(
        `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tolerance ${tol})\n  page:   ${JSON.stringify(actual)}\n  native: ${JSON.stringify(expected)}`,
      );
    }
  }
}

export async function makeTempDir(prefix = 'advlab-test-') {
  return mkdtemp(join(tmpdir(), prefix));
}

// ---------------------------------------------------------------------------------------------
// Mock engine + model (page-logic tests without the wasm build)
// ---------------------------------------------------------------------------------------------

export const MOCK_SAMPLES = 12;
export const MOCK_THRESHOLD = 0.05;

/** Made-up MNIST-shaped files: manifest, weights (mock format) and a sample pack of simple shapes. */
export function mockFiles() {
  const weights = new Uint8Array(1000);
  weights[0] = 0x42;
  const manifest = {
    dataset: 'mnist',
    classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    input: [1, 28, 28],
    weights: 'mnist.safetensors',
    size: weights.length,
    sha256: 'mock',
    test_accuracy: 0.5,
  };
  const n = 28 * 28;
  const bin = new Uint8Array(MOCK_SAMPLES * n);
  for (let k = 0; k < MOCK_SAMPLES; k++) {
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const r = Math.hypot(x - 14, y - 14);
        const on = Math.abs(r - (4 + (k % 7))) < 1.5 || (k > 6 && Math.abs(x - 14) < 2);
        bin[k * n + y * 28 + x] = on ? 255 : 0;
      }
    }
  }
  const samples = { dataset: 'mnist', count: MOCK_SAMPLES, shape: [1, 28, 28], labels: Array.from({ length: MOCK_SAMPLES }, (_, k) => k % 10), file: 'mnist-samples.bin' };
  // The stand-in's detector: 1-bit depth only (see fixtures/mock-advlab.js for what its numbers are).
  const squeeze = {
    dataset: 'mnist',
    squeezers: [{ kind: 'bit_depth', bits: 1 }],
    threshold: MOCK_THRESHOLD,
    false_positive_rate: 0.05,
    calibration_images: 100,
    bit_depth: { kind: 'bit_depth', bits: 1 },
    median: { kind: 'median', width: 3, height: 3 },
  };
  return {
    'mnist.json': { body: JSON.stringify(manifest), contentType: 'application/json' },
    'mnist-squeeze.json': { body: JSON.stringify(squeeze), contentType: 'application/json' },
    'mnist.safetensors': { body: Buffer.from(weights), contentType: 'application/octet-stream' },
    'mnist-samples.json': { body: JSON.stringify(samples), contentType: 'application/json' },
    'mnist-samples.bin': { body: Buffer.from(bin), contentType: 'application/octet-stream' },
  };
}

async function installMock(context) {
  const { readFile } = await import('node:fs/promises');
  const mockJs = await readFile(join(REPO, 'tests', 'browser', 'fixtures', 'mock-advlab.js'));
  const files = mockFiles();
  await context.route(/\/pkg\/advlab\.js(\?.*)?$/, (route) =>
    route.fulfill({ status: 200, contentType: 'text/javascript', body: mockJs }),
  );
  await context.route(/\/models\/[^/?]+(\?.*)?$/, (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop();
    const f = files[name];
    if (!f) return route.fulfill({ status: 404, contentType: 'text/plain', body: 'not found' });
    return route.fulfill({ status: 200, contentType: f.contentType, body: f.body });
  });
}

// ---------------------------------------------------------------------------------------------
// Page actions shared by the tests
// ---------------------------------------------------------------------------------------------

/** Clicks sample i and returns its prediction. */
export async function predictSample(page, i, timeout = 120_000) {
  const seq = await predictionSeq(page);
  await page.click(`#samples [data-sample="${i}"]`);
  await page.waitForFunction(
    ([n, src]) => {
      const el = document.querySelector('#prediction');
      return Number(el.dataset.seq ?? 0) > n && el.dataset.source === src;
    },
    [seq, `sample:${i}`],
    { timeout },
  );
  return readPrediction(page);
}

/** Uploads a file through the file input; returns the prediction, or null when none came. */
export async function uploadAndPredict(page, file, timeout = 120_000) {
  const seq = await predictionSeq(page);
  await page.setInputFiles('#upload', file);
  const name = file.split('/').pop();
  await page.waitForFunction(
    ([n, src]) => {
      const el = document.querySelector('#prediction');
      return Number(el.dataset.seq ?? 0) > n && el.dataset.source === src;
    },
    [seq, `upload:${name}`],
    { timeout },
  );
  return readPrediction(page);
}

/** Draws one stroke with the mouse across the drawing canvas. */
export async function drawStroke(page, points = [[0.5, 0.2], [0.5, 0.5], [0.52, 0.8]]) {
  const box = await page.locator('#draw').boundingBox();
  const at = ([fx, fy]) => [box.x + fx * box.width, box.y + fy * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 8 });
  await page.mouse.up();
}

export async function isVisible(page, selector) {
  return page.locator(selector).isVisible();
}

/**
 * Sets the attack form and clicks Start. `defense`: the target system (none, bit-depth, median,
 * detector); `adaptive`: attack the defense (true) or the bare model (false).
 */
export async function startAttack(page, { attack = 'cw', targeted = false, target = null, fields = {}, defense = 'none', adaptive = false } = {}) {
  await page.selectOption('#attack-type', attack);
  await page.selectOption('#attack-goal', targeted ? 'targeted' : 'untargeted');
  if (targeted) await page.selectOption('#attack-target', String(target));
  await page.selectOption('#attack-defense', defense);
  if (defense !== 'none') await page.selectOption('#attack-mode', adaptive ? 'adaptive' : 'bare');
  for (const [sel, value] of Object.entries(fields)) await page.fill(sel, String(value));
  await page.click('#attack-start');
  await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state !== 'idle');
}

export async function attackState(page) {
  return page.evaluate(() => ({
    status: document.querySelector('#attack-status').dataset.state,
    statusText: document.querySelector('#attack-status').textContent,
    reports: Number(document.querySelector('#attack-progress').dataset.count ?? 0),
    error: document.querySelector('#error').hidden ? '' : document.querySelector('#error-text').textContent,
  }));
}

export async function readAttackResult(page) {
  return page.evaluate(() => {
    const el = document.querySelector('#attack-result');
    return {
      visible: !el.hidden,
      success: el.dataset.success === 'true',
      cancelled: el.dataset.cancelled === 'true',
      predicted: Number(el.dataset.predicted),
      roundedPredicted: Number(el.dataset.roundedPredicted),
      stillAdversarial: el.dataset.stillAdversarial === 'true',
      l2: Number(el.dataset.l2),
      linf: Number(el.dataset.linf),
      verdict: document.querySelector('#adv-rounded').textContent,
      defense: el.dataset.defense,
      adaptive: el.dataset.adaptive === 'true',
      example: el.dataset.example, // "result", or "bare": the bare model's example, shown when the defense held
      outcome: document.querySelector('#adv-defense').dataset.outcome, // fooled | detected | not-fooled
      outcomeText: document.querySelector('#adv-defense').textContent,
      squeeze: el.dataset.squeeze, // the squeeze report on the example shown: done | none | failed
    };
  });
}

/**
 * Waits until the attack has ended, the defended system's outcome is known and the feature-squeezing
 * report on the example shown (when the defenses are loaded) has come.
 */
export async function waitAttackOutcome(page, timeout = 600_000) {
  await page.waitForFunction(
    () => {
      const st = document.querySelector('#attack-status').dataset.state;
      if (st === 'error' || st === 'cancelled') return true;
      const o = document.querySelector('#adv-defense').dataset.outcome;
      const sq = document.querySelector('#attack-result').dataset.squeeze;
      return st === 'done' && o !== '' && o !== 'checking' && sq !== 'pending';
    },
    null,
    { timeout },
  );
  return readAttackResult(page);
}

/** The feature-squeezing panel as shown. */
export async function readSqueeze(page) {
  return page.evaluate(() => {
    const card = document.querySelector('#squeeze-card');
    const v = document.querySelector('#squeeze-verdict');
    const num = (sel) => Number(document.querySelector(sel).textContent);
    return {
      available: document.querySelector('#squeeze-note').dataset.available,
      note: document.querySelector('#squeeze-note').textContent,
      bodyVisible: !document.querySelector('#squeeze-body').hidden,
      subject: card.dataset.subject,
      subjectText: document.querySelector('#squeeze-subject').textContent,
      seq: Number(card.dataset.seq),
      flagged: v.dataset.flagged,
      verdict: v.textContent,
      score: num('#squeeze-score'),
      threshold: num('#squeeze-threshold'),
      views: Array.from(document.querySelectorAll('#squeeze-views .squeeze-view'), (f) => ({
        name: f.dataset.name,
        predicted: Number(f.dataset.predicted),
        l1: Number(f.dataset.l1),
        inDetector: f.dataset.inDetector === 'true',
        preprocessing: f.dataset.preprocessing,
        canvas: (() => {
          const c = f.querySelector('canvas');
          return { width: c.width, height: c.height, shownWidth: c.getBoundingClientRect().width };
        })(),
      })),
      bitDepth: document.querySelector('#squeeze-bitdepth').dataset.predicted,
      median: document.querySelector('#squeeze-median').dataset.predicted,
    };
  });
}

/** Waits for a squeeze report about `subject` (input, attack-progress, attack-result) newer than `after`. */
export async function waitSqueeze(page, subject, after = 0, timeout = 120_000) {
  await page.waitForFunction(
    ([s, n]) => {
      const card = document.querySelector('#squeeze-card');
      return card.dataset.subject === s && Number(card.dataset.seq) > n;
    },
    [subject, after],
    { timeout },
  );
  return readSqueeze(page);
}

export async function squeezeSeq(page) {
  return page.evaluate(() => Number(document.querySelector('#squeeze-card').dataset.seq));
}

/** Every request URL that left the page's own origin (blob: and data: URLs of the page count as its own). */
export function foreignRequests(requests, pageUrl) {
  const origin = new URL(pageUrl).origin;
  return requests.filter((u) => {
    if (u.startsWith('data:')) return false;
    if (u.startsWith('blob:')) return !u.startsWith(`blob:${origin}/`);
    try {
      return new URL(u).origin !== origin;
    } catch {
      return true;
    }
  });
}

/**
 * Chooses a data set with its switch and waits until the page is ready again. Returns the page
 * states seen on the way (the visible loading state when the model was not loaded yet).
 */
export async function switchDataset(page, ds, timeout = 300_000) {
  await page.evaluate(() => {
    window.__advlabStates = [];
    window.__advlabStateWatch?.disconnect();
    window.__advlabStateWatch = new MutationObserver(() => window.__advlabStates.push(document.body.dataset.state));
    window.__advlabStateWatch.observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
  });
  await page.click(`#dataset-${ds}`);
  await page.waitForFunction((d) => document.querySelector(`#dataset-${d}`).getAttribute('aria-checked') === 'true', ds);
  await waitReady(page, timeout);
  return page.evaluate(() => {
    window.__advlabStateWatch.disconnect();
    return window.__advlabStates;
  });
}

/** Writes an RGB PNG (8 bits per channel) of w x h whose pixel (x, y) is rgb(x, y) = [r, g, b]. */
export async function writePng(path, w, h, rgb) {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, encodePng(w, h, { colorType: 2, bitDepth: 8, pixel: rgb }));
}

/**
 * A PNG of w x h: colorType 0 (grey), 2 (RGB) or 6 (RGBA), bitDepth 8 or 16; pixel(x, y) gives
 * the channel values (in 0..255 or 0..65535). `idat`: raw bytes to put in place of the image
 * data (e.g. a header for a huge image without the pixels).
 */
export function encodePng(w, h, { colorType = 2, bitDepth = 8, pixel = null, idat = null } = {}) {
  const { deflateSync } = zlib;
  const channels = { 0: 1, 2: 3, 6: 4 }[colorType];
  const bytes = bitDepth / 8;
  let data = idat;
  if (!data) {
    const stride = w * channels * bytes + 1;
    const raw = Buffer.alloc(stride * h);
    for (let y = 0; y < h; y++) {
      raw[y * stride] = 0; // filter: none
      for (let x = 0; x < w; x++) {
        const v = pixel(x, y);
        for (let c = 0; c < channels; c++) {
          const o = y * stride + 1 + (x * channels + c) * bytes;
          if (bytes === 2) raw.writeUInt16BE(v[c], o);
          else raw[o] = v[c];
        }
      }
    }
    data = deflateSync(raw);
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, body) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const all = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(all));
    return Buffer.concat([len, all, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([bitDepth, colorType, 0, 0, 0], 8); // deflate, adaptive filtering, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', data),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * Registers the suite's set-up and tear-down: starts the lab with `options` before the tests,
 * waits until the page is ready, hands it to `onReady`, and closes everything after (printing
 * the page's console with ADVLAB_TEST_VERBOSE=1).
 */
export function useLab(options, readyTimeout, onReady) {
  let lab;
  before(async () => {
    lab = await startLab(options);
    await waitReady(lab.page, readyTimeout);
    onReady(lab);
  });
  after(async () => {
    if (lab && process.env.ADVLAB_TEST_VERBOSE) console.log(lab.consoleLines.join('\n'));
    await lab?.close();
  });
}

/** Clicks Cancel and waits until the attack has stopped; returns how long that took (ms). */
export async function cancelAttack(page) {
  const t0 = Date.now();
  await page.click('#attack-cancel');
  await page.waitForFunction(
    () => ['idle', 'cancelled'].includes(document.querySelector('#attack-status').dataset.state),
    null,
    { timeout: 15_000 },
  );
  return Date.now() - t0;
}
