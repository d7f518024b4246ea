#!/usr/bin/env node
// The browser benchmark of issue 12 (`make bench`): the lab's engine from pkg/ on WebGPU and on its
// CPU fallback against TensorFlow.js on webgpu, webgl, wasm and cpu, running the same nets with the
// same weights and the same Carlini-Wagner L2 step, interleaved in one headless Chromium; plus time to
// the first prediction, one complete default C&W attack in the real page, and memory after many
// attacks. Prints the results as JSON and writes BENCHMARKS.md at the repository root (with the
// PyTorch CPU peer of tests/bench/torch_step.py and `lab bench --attack-step` when they have run).
//
// Knobs (environment):
//   BENCH_ROUNDS=3           rounds of the step benchmark (each round runs every contestant once per cell)
//   BENCH_MIN_MS=1000        a measurement runs at least this long ...
//   BENCH_MIN_STEPS=1        ... and at least this many steps (after its own first step, never timed) ...
//   BENCH_MAX_STEPS=50       ... and stops at this many steps even when shorter than BENCH_MIN_MS
//   BENCH_WARMUP=0           1: one untimed measurement per cell and contestant before the rounds (each
//                            measurement already leaves its first step out of the time)
//   BENCH_MAX_MS=20000       ... but stops once past this (BENCH_MIN_STEPS done)
//   BENCH_CELLS=mnist:1,mnist:64,cifar10:1,cifar10:64:1
//                            data set:batch[:rounds] (rounds default to BENCH_ROUNDS; CIFAR-10 at batch 64 takes
//                            about a minute a step on WebGPU on SwiftShader, so it runs one round by default)
//   BENCH_CONTESTANTS=lab-webgpu,lab-cpu,tfjs-webgpu,tfjs-webgl,tfjs-wasm,tfjs-cpu
//   BENCH_TTFP_ROUNDS=1      fresh pages per contestant for the time to the first prediction
//   BENCH_FULL_ATTACK=cpu    backends of the page for the complete default C&W attack (cpu, webgpu; "" for none)
//   BENCH_MEMORY=lab-cpu     contestants for the memory check ("" for none)
//   BENCH_MEMORY_AT=5,50     attacks after which memory is read
//   BENCH_TORCH_JSON=path    the PyTorch peer's JSON (make bench writes it before this runs)
//   BENCH_NATIVE_JSON=path   `lab bench --attack-step --json` output, when that command exists
//   BENCH_BASELINE=<git rev> also measure the engine of an older pkg/ (e.g. 7298fc9, the pkg/ before issue 12):
//                            base-webgpu and base-cpu in the step benchmark, and the complete attack in that
//                            commit's page (its index.html, web/ and pkg/, extracted into tests/bench/.baseline/)
//   BENCH_OUT=BENCHMARKS.md  where the report goes ("" to write none)
//   BENCH_REPORT_FROM=path   only rewrite the report from a run's JSON (tests/bench/results.json)
//   BENCH_COMMAND            the command line recorded in the report (make bench sets it)

import { writeFile, readFile, access } from 'node:fs/promises';
import { cpus, totalmem, release, platform, loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../web/serve.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.ADVLAB_CHROMIUM ?? '/usr/bin/chromium';

// The flags of tests/browser/harness.mjs: WebGPU on SwiftShader (Vulkan) in headless Chromium.
const COMMON_FLAGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];
// For the memory readings: a collectable heap (gc()) and unrounded performance.memory figures.
const MEMORY_FLAGS = ['--js-flags=--expose-gc', '--enable-precise-memory-info'];

const env = (k, d) => (process.env[k] === undefined ? d : process.env[k]);
const list = (k, d) => env(k, d).split(',').map((s) => s.trim()).filter(Boolean);
const num = (k, d) => Number(env(k, String(d)));

const BASELINE = env('BENCH_BASELINE', '');
if (BASELINE && !/^[0-9A-Za-z._\/-]+$/.test(BASELINE)) throw new Error(`BENCH_BASELINE: not a git revision: ${BASELINE}`);
const CONFIG = {
  baseline: BASELINE || null,
  rounds: num('BENCH_ROUNDS', 3),
  minMs: num('BENCH_MIN_MS', 1000),
  minSteps: num('BENCH_MIN_STEPS', 1),
  warmup: env('BENCH_WARMUP', '0') === '1',
  maxSteps: num('BENCH_MAX_STEPS', 50),
  maxMs: num('BENCH_MAX_MS', 20000),
  cells: list('BENCH_CELLS', 'mnist:1,mnist:64,cifar10:1,cifar10:64:1').map((c) => {
    const [dataset, batch, rounds] = c.split(':');
    return { dataset, batch: Number(batch), rounds: rounds ? Number(rounds) : num('BENCH_ROUNDS', 3) };
  }),
  contestants: list('BENCH_CONTESTANTS', `lab-webgpu,lab-cpu,${BASELINE ? 'base-webgpu,base-cpu,' : ''}tfjs-webgpu,tfjs-webgl,tfjs-wasm,tfjs-cpu`),
  ttfpRounds: num('BENCH_TTFP_ROUNDS', 1),
  fullAttack: list('BENCH_FULL_ATTACK', 'cpu'),
  memory: list('BENCH_MEMORY', 'lab-cpu'),
  memoryAt: list('BENCH_MEMORY_AT', '5,50').map(Number),
};
// The attack repeated for the memory check: the page's C&W, shortened so that 50 of them fit the run.
const MEMORY_PARAMS = { attack: 'cw', targeted: false, target: null, steps: 20, binary_search_steps: 2, initial_const: 1, confidence: 0, learning_rate: 0.05, defense: 'none', adaptive: false };

// Ratios lab / peer shown in the report: [lab contestant, peer].
const PAIRS = [
  ['lab-webgpu', 'tfjs-webgpu'],
  ['lab-webgpu', 'tfjs-webgl'],
  ['lab-cpu', 'tfjs-wasm'],
  ['lab-cpu', 'tfjs-cpu'],
  ['lab-webgpu', 'lab-cpu'],
  ['lab-webgpu', 'base-webgpu'],
  ['lab-cpu', 'base-cpu'],
];

/**
 * The baseline's page and engine: index.html, web/ and pkg/ of that commit under
 * tests/bench/.baseline/<rev>/, with models/ linked to the repository's (the same weights).
 * Returns the URL path of its folder.
 */
function extractBaseline(rev) {
  const sha = execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], { cwd: REPO, encoding: 'utf8' }).trim();
  const dir = join(REPO, 'tests', 'bench', '.baseline', sha);
  execFileSync('bash', ['-c', `rm -rf "${dir}" && mkdir -p "${dir}" && git archive ${sha} index.html web pkg | tar -x -C "${dir}" && ln -s ../../../../models "${dir}/models"`], { cwd: REPO });
  return { sha, path: `/tests/bench/.baseline/${sha}` };
}

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
const median = (v) => {
  const s = [...v].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function exists(p) {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...COMMON_FLAGS, ...WEBGPU_FLAGS, ...MEMORY_FLAGS], timeout: 60_000 });
}

/** A fresh page (own context: nothing cached from another page's wasm or tfjs) on the benchmark page. */
let BASELINE_PATH = null; // URL path of the extracted baseline, when BENCH_BASELINE is given

async function benchPage(browser, url, consoleLines) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleLines.push(`[${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) consoleLines.push(`[http ${r.status()}] ${r.url()}`);
  });
  await page.goto(`${url}/tests/bench/bench.html${BASELINE_PATH ? `?baseline=${encodeURIComponent(`${BASELINE_PATH}/pkg/advlab.js`)}` : ''}`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 120_000 });
  return { page, context };
}

async function machineInfo() {
  const c = cpus();
  let chromiumVersion = null;
  try {
    chromiumVersion = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    chromiumVersion = null;
  }
  let pkg = null;
  try {
    pkg = (await readFile(join(REPO, 'pkg', '.source-hash'), 'utf8')).trim();
  } catch {
    pkg = null;
  }
  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    commit = null;
  }
  return { loadAverageAtStart: loadavg().map((v) => +v.toFixed(2)), cpu: c[0]?.model, cores: c.length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), os: `${platform()} ${release()}`, node: process.version, chromium: chromiumVersion, pkgSourceHash: pkg, commit };
}

// ---------------------------------------------------------------------------------------------
// The complete default C&W attack, in the real page (index.html, its worker, its defaults)
// ---------------------------------------------------------------------------------------------

async function fullAttack(browser, url, backend, consoleLines, pagePath = '', engine = 'lab') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => consoleLines.push(`[page ${backend}] ${e.message}`));
  const t0 = Date.now();
  await page.goto(`${url}${pagePath}/?backend=${backend}`);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 300_000 });
  const readyMs = Date.now() - t0;
  const st = await page.evaluate(() => ({ state: document.body.dataset.state, backend: document.querySelector('#backend')?.dataset.backend }));
  if (st.state !== 'ready') throw new Error(`the page did not become ready on ${backend}`);
  if (st.backend !== backend) throw new Error(`the page runs on ${st.backend}, not ${backend}`);
  // Sample 0 (a 7), the page's C&W with every field at its default, untargeted, bare model.
  const seq = await page.evaluate(() => Number(document.querySelector('#prediction')?.dataset.seq ?? 0));
  await page.click('#samples [data-sample="0"]');
  await page.waitForFunction((n) => Number(document.querySelector('#prediction')?.dataset.seq ?? 0) > n, seq, { timeout: 300_000 });
  await page.selectOption('#attack-type', 'cw');
  // The form's fields (empty ones leave the engine's own default) and the page's note on the defaults.
  const params = await page.evaluate(() => ({
    fields: Object.fromEntries(['#p-steps', '#p-bss', '#p-const', '#p-conf', '#p-lr'].map((s) => [s.slice(3), document.querySelector(s)?.value ?? ''])),
    note: document.querySelector('#attack-defaults')?.textContent?.trim() ?? '',
  }));
  const t1 = Date.now();
  await page.click('#attack-start');
  await page.waitForFunction(() => ['done', 'error', 'cancelled'].includes(document.querySelector('#attack-status').dataset.state), null, { timeout: 3_600_000, polling: 100 });
  const wallMs = Date.now() - t1;
  const out = await page.evaluate(() => ({
    status: document.querySelector('#attack-status').dataset.state,
    lastReportedStep: Number(document.querySelector('#attack-progress').dataset.step ?? NaN),
    reports: Number(document.querySelector('#attack-progress').dataset.count ?? 0),
    progressText: document.querySelector('#attack-progress').textContent,
    success: document.querySelector('#attack-result').dataset.success,
    l2: Number(document.querySelector('#attack-result').dataset.l2),
  }));
  await context.close();
  return { engine, backend, pageReadyMs: readyMs, params, wallSeconds: wallMs / 1000, ...out };
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const fmtMs = (v) => (v == null ? '—' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const fmtRatio = (v) => (v == null ? '—' : v >= 10 ? v.toFixed(0) : v.toFixed(2));
const fmtMiB = (b) => (b == null ? '—' : `${(b / 2 ** 20).toFixed(1)} MiB`);

function report(r) {
  const L = [];
  const cells = r.config.cells;
  L.push('# Benchmarks: the attack step against TensorFlow.js and PyTorch');
  L.push('');
  L.push('Written by `make bench` (tests/bench/); every figure below comes from the run described here. Regenerate with:');
  L.push('');
  L.push('```sh');
  L.push(r.command);
  L.push('```');
  L.push('');
  if (r.baseline) L.push(`Baseline (base-*): the engine and page of commit ${r.baseline.sha} (BENCH_BASELINE), measured in the same run.`, '');
  if (r.machine.pkgSourceHashAtEnd !== undefined) L.push(`**pkg/ changed during this run** (source hash \`${String(r.machine.pkgSourceHashAtEnd).slice(0, 12)}\` at the end): its figures mix two builds.`, '');
  L.push(`Run: ${r.startedAt} → ${r.finishedAt} (${(r.seconds / 60).toFixed(1)} min), commit ${r.machine.commit ?? '?'}, pkg/ source hash \`${(r.machine.pkgSourceHash ?? '?').slice(0, 12)}\`.`);
  L.push('');
  L.push('## What is measured');
  L.push('');
  L.push('One step of Carlini & Wagner\'s L2 attack (src/attacks/cw.rs): tanh change of variables, forward pass, f6 margin loss plus the L2 term,');
  L.push('gradient to the input, success and best-so-far bookkeeping on the device, Adam (TF1 form). The same C&W nets (src/models/mod.rs)');
  L.push('with the same weights (models/*.safetensors; conv weights moved from burn\'s [out, in, kh, kw] to tfjs\'s [kh, kw, in, out], the');
  L.push('first dense layer\'s rows from NCHW to NHWC flatten order), untargeted, on the first 1 or 64 images of the sample pack.');
  L.push('');
  L.push('- **lab**: the real engine from pkg/ (`Lab.create(true)` = WebGPU, `Lab.create(false)` = burn Flex on the CPU in wasm), called');
  L.push('  as the page\'s worker calls it: `attack_many` with one round of many steps. The lab reports progress by the clock (every 200 ms at');
  L.push('  most; every step when a step is slower); the step time is the time between the first progress report and the last, divided by');
  L.push('  the steps in between (the callback cancels the run), so it is the step as the page runs it, its reports included.');
  L.push('- **tfjs**: TensorFlow.js ' + (r.browser.tfjsVersion ?? '?') + ' (`tf.fused.conv2d` / `tf.fused.matMul` with ReLU, as tf.layers uses them,');
  L.push('  `tf.variableGrads`), reading the loss back every 10th step and whenever 200 ms passed since the last read-back (as the lab\'s');
  L.push('  loop reads back); success is judged on the logits the loss computed (the lab runs the classifier a second time for it).');
  L.push(`- Each measurement leaves its first step (kernels compiled, buffers allocated) out of the time and runs for at least ${r.config.minMs} ms`);
  L.push(`  and ${r.config.minSteps} step(s) (at most ${r.config.maxSteps} steps; past ${r.config.maxMs} ms it stops after its first timed step)${r.config.warmup ? ', after an untimed warm-up measurement per cell' : ''}. Rounds alternate`);
  L.push('  the order of the contestants; a ratio is the median over rounds of the per-round ratio lab / peer.');
  L.push(`- WebGPU and WebGL run on SwiftShader (a software GPU on the ${r.machine.cores} CPU cores), so the GPU figures measure fixed costs`);
  L.push('  and kernel counts more than arithmetic; with so few steps per round on WebGPU (each step takes seconds) single figures are');
  L.push('  noisy, and CIFAR-10 at batch 64 runs one round only to keep the default run near 15 minutes. More rounds:');
  L.push('  `BENCH_ROUNDS=9 BENCH_MIN_MS=5000 BENCH_CELLS=mnist:1,mnist:64,cifar10:1,cifar10:64 make bench` (knobs at the top of');
  L.push('  tests/bench/run.mjs).');
  L.push('');
  L.push('## Fairness check: the same logits');
  L.push('');
  L.push('Log-softmax (the logits up to their per-image shift: the lab\'s API returns probabilities) of the first sample images, lab vs tfjs:');
  L.push('');
  L.push('| data set | lab | peer | images | same class | max abs diff, log-prob | max abs diff, prob | within 1e-3 |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const [ds, pairs] of Object.entries(r.parity)) {
    for (const p of pairs) {
      L.push(`| ${ds} | ${p.lab} | ${p.tfjs} | ${p.images} | ${p.sameClass == null ? '—' : `${p.sameClass}/${p.images}`} | ${p.maxAbsLogProbDiff.toExponential(2)} | ${Number.isFinite(p.maxAbsProbDiff) ? p.maxAbsProbDiff.toExponential(2) : '—'} | ${p.maxAbsLogProbDiff <= 1e-3 ? 'yes' : '**no**'} |`);
    }
  }
  L.push('');
  L.push('## The attack step: ratios lab / peer (below 1: the lab is faster)');
  L.push('');
  const pairs = PAIRS.filter(([a, b]) => r.config.contestants.includes(a) && r.config.contestants.includes(b));
  const nativeOf = (j, c) => j?.results?.find?.((t) => t.dataset === c.dataset && t.batch === c.batch)?.ms_per_step_median;
  const both = r.torch && Array.isArray(r.native?.results);
  L.push(`| net, batch | rounds | ${pairs.map(([a, b]) => `${a} / ${b}`).join(' | ')}${both ? ' | lab native / PyTorch CPU |' : ' |'}`);
  L.push(`|---|---|${pairs.map(() => '---').join('|')}${both ? '|---|' : '|'}`);
  for (const c of cells) {
    const key = `${c.dataset}:${c.batch}`;
    const nt = both ? ` | ${fmtRatio(nativeOf(r.native, c) / nativeOf(r.torch, c))}` : '';
    L.push(`| ${c.dataset}, ${c.batch} | ${c.rounds} | ${pairs.map(([a, b]) => fmtRatio(r.steps[key]?.ratios?.[`${a}/${b}`])).join(' | ')}${nt} |`);
  }
  if (both) L.push('', 'The native ratio is of medians from two separate runs (the PyTorch script, then `lab bench --attack-step`), not interleaved.');
  L.push('');
  L.push('## The attack step: medians (time per step)');
  L.push('');
  const cs = r.config.contestants.filter((c) => Object.values(r.steps).some((s) => s.median?.[c] != null) || true);
  const extra = [];
  if (r.torch) extra.push('PyTorch CPU (native)');
  if (r.native) extra.push('lab native (CPU)');
  L.push(`| net, batch | ${[...cs, ...extra].join(' | ')} |`);
  L.push(`|---|${[...cs, ...extra].map(() => '---').join('|')}|`);
  for (const c of cells) {
    const key = `${c.dataset}:${c.batch}`;
    const row = cs.map((k) => {
      const m = r.steps[key]?.median?.[k];
      const err = r.steps[key]?.errors?.[k];
      return m != null ? fmtMs(m) : err ? 'failed' : '—';
    });
    if (r.torch) row.push(fmtMs(nativeOf(r.torch, c)));
    if (r.native) row.push(fmtMs(nativeOf(r.native, c)));
    L.push(`| ${c.dataset}, ${c.batch} | ${row.join(' | ')} |`);
  }
  L.push('');
  L.push('Per-round figures (ms per step, steps measured) are in the JSON the command prints.');
  const failed = Object.entries(r.steps).flatMap(([k, s]) => Object.entries(s.errors ?? {}).map(([c, e]) => `${k} ${c}: ${e}`));
  if (failed.length) {
    L.push('');
    L.push('Failed measurements:');
    for (const f of failed) L.push(`- ${f}`);
  }
  if (r.torch) {
    L.push('');
    L.push(`PyTorch peer: \`${r.torch.command.trim()}\` — torch ${r.torch.torch} (PyPI's wheel; used on the CPU), ${r.torch.threads} threads, median of ${r.torch.rounds} rounds, each ${r.torch.steps} (native, not in the browser; the same step on the same weights).`);
  } else {
    L.push('');
    L.push('PyTorch peer: not run (tests/bench/torch_step.py; `make bench` runs it when PyTorch installs).');
  }
  if (r.native && !Array.isArray(r.native.results)) {
    // Its format is the native command's; shown as it came when it is not the one the table reads.
    L.push('Native lab (`lab bench --attack-step --json`), as printed:');
    L.push('');
    L.push('```json');
    L.push(JSON.stringify(r.native, null, 2));
    L.push('```');
  } else {
    L.push(r.native ? `Native lab: \`${r.native.command ?? 'lab bench --attack-step --json'}\`${r.native.device ? ` on ${r.native.device}` : ''} — the built target/release/lab, whose sources may be newer than pkg/'s.` : 'Native lab: `lab bench --attack-step` does not exist yet in this build (or no built `target/release/lab`); only the PyTorch side ran natively.');
  }
  L.push('');
  L.push('## WebGPU calls per step (counted in the page)');
  L.push('');
  L.push('The benchmark page wraps the WebGPU methods before any engine starts, so the lab\'s calls (wgpu through wasm-bindgen) and');
  L.push('tfjs\'s are counted alike; per step of the measurements above (median over rounds), and per warm single-image prediction.');
  L.push('mapAsyncWaitMs: milliseconds from a read-back\'s mapAsync to its promise settling (the wait for the queued GPU work);');
  L.push('submitMs: milliseconds spent inside queue.submit; workDoneWaitMs: waits on onSubmittedWorkDone.');
  L.push('');
  const kinds = ['dispatchWorkgroups', 'beginComputePass', 'createCommandEncoder', 'submit', 'createBindGroup', 'createBuffer', 'writeBuffer', 'mapAsync', 'mapAsyncWaitMs', 'submitMs', 'onSubmittedWorkDone', 'workDoneWaitMs', 'copyBufferToBuffer', 'createComputePipeline', 'createComputePipelineAsync', 'createShaderModule'];
  const gpuRows = [];
  for (const c of cells) {
    const key = `${c.dataset}:${c.batch}`;
    for (const k of r.config.contestants.filter((x) => x.endsWith('-webgpu'))) {
      const rounds = (r.steps[key]?.rounds ?? []).map((x) => x[k]?.gpuCallsPerStep).filter(Boolean);
      if (!rounds.length) continue;
      gpuRows.push([`step ${c.dataset}, ${c.batch}`, k, Object.fromEntries(kinds.map((n) => [n, median(rounds.map((x) => x[n] ?? 0))]))]);
    }
  }
  for (const [ds, v] of Object.entries(r.predictGpuCalls ?? {})) {
    for (const [k, calls] of Object.entries(v)) if (k.endsWith('-webgpu') && calls) gpuRows.push([`predict ${ds}, 1`, k, calls]);
  }
  const used = kinds.filter((n) => gpuRows.some(([, , x]) => x[n]));
  L.push(`| what | engine | ${used.join(' | ')} |`);
  L.push(`|---|---|${used.map(() => '---').join('|')}|`);
  for (const [what, k, x] of gpuRows) L.push(`| ${what} | ${k} | ${used.map((n) => x[n] ?? 0).join(' | ')} |`);
  // Which kernels the dispatches are (from the last round that has them).
  const byKind = [];
  for (const c of cells) {
    const key = `${c.dataset}:${c.batch}`;
    for (const k of r.config.contestants.filter((x) => x.endsWith('-webgpu') && !x.startsWith('tfjs-'))) {
      const last = (r.steps[key]?.rounds ?? []).map((x) => x[k]?.gpuCallsPerStep?.dispatchesByKind).filter(Boolean).pop();
      if (last) byKind.push([`${c.dataset}, ${c.batch}`, k, last]);
    }
  }
  if (byKind.length) {
    L.push('');
    L.push('The lab\'s dispatches per step by kernel (its pipelines carry their CubeCL kernel names; type parameters and hash dropped;');
    L.push('tfjs\'s minified build labels its pipelines with a few letters, so only its totals above):');
    L.push('');
    L.push('| net, batch | engine | dispatches per step by kernel, most first |');
    L.push('|---|---|---|');
    // One name per kernel: type parameters and vectorisation dropped (the page does the same since it was written).
    const kernel = (n) => n.replace(/_[a-z]+_(f32|u32|i32|f16|bool)(_.*)?$/, '');
    for (const [what, k, kinds] of byKind) {
      const merged = {};
      for (const [n, v] of Object.entries(kinds)) merged[kernel(n)] = +((merged[kernel(n)] ?? 0) + v).toFixed(1);
      const sorted = Object.entries(merged).sort((a, b) => b[1] - a[1]);
      L.push(`| ${what} | ${k} | ${sorted.map(([n, v]) => `${n} ${v}`).join(', ')} |`);
    }
  }
  L.push('');
  L.push('## Warm single-image prediction (forward + softmax read-back per call)');
  L.push('');
  L.push(`| net | ${r.config.contestants.join(' | ')} |`);
  L.push(`|---|${r.config.contestants.map(() => '---').join('|')}|`);
  for (const [ds, v] of Object.entries(r.predict)) L.push(`| ${ds} | ${r.config.contestants.map((c) => fmtMs(v[c])).join(' | ')} |`);
  L.push('');
  L.push('## Time to the first prediction (fresh page)');
  L.push('');
  L.push('Lab: import pkg/advlab.js, compile and start the wasm, `Lab.create`, fetch and load the MNIST model, one `predict`. tfjs: start');
  L.push('the backend (the wasm backend fetches and compiles its wasm), fetch the weights, make the tensors, one prediction read back');
  L.push('(tfjs\'s scripts were loaded with the page, outside the time). Median over ' + r.config.ttfpRounds + ' fresh page(s) each.');
  L.push('');
  L.push(`| ${r.config.contestants.join(' | ')} |`);
  L.push(`|${r.config.contestants.map(() => '---').join('|')}|`);
  L.push(`| ${r.config.contestants.map((c) => fmtMs(r.firstPrediction.median[c])).join(' | ')} |`);
  const ttfpPairs = pairs.filter(([a, b]) => r.firstPrediction.median[a] != null && r.firstPrediction.median[b] != null);
  if (ttfpPairs.length) {
    L.push('');
    L.push(`Ratios: ${ttfpPairs.map(([a, b]) => `${a} / ${b} ${fmtRatio(r.firstPrediction.median[a] / r.firstPrediction.median[b])}`).join('; ')}.`);
  }
  L.push('');
  L.push('## One complete default C&W attack in the page');
  L.push('');
  if (!r.fullAttack.length) L.push('Not run (BENCH_FULL_ATTACK empty).');
  else {
    L.push('index.html with its worker, MNIST sample 0, the attack form at its defaults (C&W, untargeted, bare model): wall time from');
    L.push('the Start click to the end. Steps: the last step the page was told of (progress comes at most every 200 ms, so up to 200 ms of');
    L.push('steps may follow it; the early abort ends a round before its last step).');
    L.push('');
    L.push('| engine | backend | parameters | wall time | steps run (last reported / planned) | progress reports | success | L2 |');
    L.push('|---|---|---|---|---|---|---|---|');
    for (const f of r.fullAttack) {
      if (f.error) L.push(`| ${f.engine} | ${f.backend} | — | failed: ${f.error} | | | | |`);
      else {
        const planned = /\/\s*(\d+)/.exec(f.progressText)?.[1] ?? '?';
        const p = f.params.fields;
        const given = p.steps !== '' ? `steps ${p.steps}, rounds ${p.bss}, c ${p.const}, lr ${p.lr}, κ ${p.conf}` : '';
        L.push(`| ${f.engine} | ${f.backend} | ${given || f.params.note || 'the engine\'s defaults'} | ${f.wallSeconds.toFixed(1)} s | ${f.lastReportedStep} / ${planned} | ${f.reports} | ${f.success} | ${Number.isFinite(f.l2) ? f.l2.toFixed(3) : '—'} |`);
      }
    }
    if (!r.config.fullAttack.includes('webgpu')) {
      L.push('');
      const f = r.fullAttack.find((x) => !x.error && x.engine === 'lab');
      const planned = Number(/\/\s*(\d+)/.exec(f?.progressText ?? '')?.[1]);
      const step = r.steps['mnist:1']?.median?.['lab-webgpu'];
      const est = planned && step ? ` (${planned} steps at the WebGPU step time above: about ${Math.round((planned * step) / 60000)} min)` : '';
      L.push(`WebGPU is left out of the default run${est}: \`BENCH_FULL_ATTACK=cpu,webgpu make bench\`.`);
    }
  }
  L.push('');
  L.push('## Memory after many attacks in a row');
  L.push('');
  if (!Object.keys(r.memory).length) L.push('Not run (BENCH_MEMORY empty).');
  else {
    L.push(`The lab's single-image \`attack\` (as the page calls it) on one MNIST image, ${JSON.stringify(MEMORY_PARAMS)}, repeated; after a`);
    L.push('garbage collection: the wasm instance\'s linear memory and the JS heap (`performance.memory`, precise). The page is not');
    L.push('cross-origin isolated, so `performance.measureUserAgentSpecificMemory` is not available; GPU buffers are not visible to either.');
    L.push('');
    L.push('| engine | attacks | wasm memory | JS heap used | growth vs the first reading |');
    L.push('|---|---|---|---|---|');
    for (const [c, rs] of Object.entries(r.memory)) {
      if (rs.error) {
        L.push(`| ${c} | — | failed: ${rs.error} | | |`);
        continue;
      }
      const base = rs[0].wasmMemoryBytes + (rs[0].jsHeapUsedBytes ?? 0);
      for (const x of rs) {
        const tot = x.wasmMemoryBytes + (x.jsHeapUsedBytes ?? 0);
        L.push(`| ${c} | ${x.attacks} | ${fmtMiB(x.wasmMemoryBytes)} | ${fmtMiB(x.jsHeapUsedBytes)} | ${(((tot - base) / base) * 100).toFixed(1)}% |`);
      }
    }
  }
  L.push('');
  L.push('## Machine, browser, adapter');
  L.push('');
  L.push(`- CPU: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB; ${r.machine.os}; Node ${r.machine.node}`);
  L.push(`- Load average (1, 5, 15 min) at the start ${r.machine.loadAverageAtStart.join(', ')}, at the end ${r.machine.loadAverageAtEnd.join(', ')} (other work on the machine slows every contestant alike, but adds noise)`);
  L.push(`- Browser: ${r.machine.chromium} (headless; ${r.browser.userAgent})`);
  L.push(`- WebGPU adapter: ${JSON.stringify(r.browser.webgpuAdapter)}; WebGL renderer: ${r.browser.webglRenderer ?? '—'}`);
  L.push(`- tfjs ${r.browser.tfjsVersion}; wasm backend SIMD ${r.browser.tfjsWasm?.simd}, threads ${r.browser.tfjsWasm?.threads} (the page is not cross-origin isolated, so tfjs-wasm runs single-threaded, as the lab's wasm does)`);
  L.push(`- Lab backends: ${Object.entries(r.browser.labNotes ?? {}).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  if (r.console.length) {
    L.push('');
    L.push(`Browser console (errors and warnings, first ${Math.min(10, r.console.length)} of ${r.console.length}):`);
    L.push('');
    for (const l of r.console.slice(0, 10)) L.push(`    ${l.slice(0, 300)}`);
  }
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function readJson(path) {
  if (!path || !(await exists(path))) return null;
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    log(`could not read ${path}: ${e.message}`);
    return null;
  }
}

async function main() {
  const from = env('BENCH_REPORT_FROM', '');
  if (from) {
    // Rewrites the report from a run's JSON (tests/bench/results.json) without measuring again.
    const r = JSON.parse(await readFile(from, 'utf8'));
    await writeFile(resolve(REPO, env('BENCH_OUT', 'BENCHMARKS.md')), report(r));
    return;
  }
  if (!(await exists(CHROMIUM))) throw new Error(`no Chromium at ${CHROMIUM} (make setup)`);
  for (const p of ['pkg/advlab.js', 'node_modules/@tensorflow/tfjs/dist/tf.min.js']) {
    if (!(await exists(join(REPO, p)))) throw new Error(`${p} is missing (make setup / npm ci)`);
  }
  const startedAt = new Date();
  const results = {
    command: env('BENCH_COMMAND', 'node tests/bench/run.mjs'),
    startedAt: startedAt.toISOString(),
    config: CONFIG,
    machine: await machineInfo(),
    browser: {},
    parity: {},
    labLogProbs: {},
    steps: {},
    predict: {},
    predictGpuCalls: {},
    firstPrediction: { runs: {}, median: {} },
    fullAttack: [],
    memory: {},
    console: [],
  };
  if (BASELINE) {
    results.baseline = extractBaseline(BASELINE);
    BASELINE_PATH = results.baseline.path;
    log(`baseline: ${BASELINE} (${results.baseline.sha}) at ${BASELINE_PATH}`);
  }
  const { server, url: base } = await startServer({ port: 0, root: REPO, quiet: true });
  const url = base.replace(/\/$/, '');
  const browser = await launch();
  try {
    const datasets = [...new Set(CONFIG.cells.map((c) => c.dataset))];
    const { page } = await benchPage(browser, url, results.console);
    log('setting up', CONFIG.contestants.join(', '));
    const setup = await page.evaluate(([d, c]) => window.bench.setup(d, c), [datasets, CONFIG.contestants]);
    for (const [b, why] of Object.entries(setup.tfUnavailable)) {
      log(`tfjs ${b} is not available: ${why}`);
      CONFIG.contestants = CONFIG.contestants.filter((c) => c !== `tfjs-${b}`);
    }
    results.browser = await page.evaluate(() => window.bench.info());
    log('browser', JSON.stringify(results.browser));

    for (const ds of datasets) {
      const { pairs, labLogProbs } = await page.evaluate(([d, c]) => window.bench.parity(d, 8, c), [ds, CONFIG.contestants]);
      results.parity[ds] = pairs;
      results.labLogProbs[ds] = labLogProbs;
      for (const p of results.parity[ds]) log(`parity ${ds} ${p.lab} vs ${p.tfjs}: max |Δ log p| ${p.maxAbsLogProbDiff.toExponential(2)}, max |Δ p| ${p.maxAbsProbDiff.toExponential(2)}`);
    }

    // Warm single-image predictions: fixed cost per call.
    for (const ds of datasets) {
      results.predict[ds] = {};
      for (const c of CONFIG.contestants) {
        const p = await page.evaluate(([c, d]) => window.bench.predictMs(c, d, 5), [c, ds]);
        results.predict[ds][c] = p.ms;
        (results.predictGpuCalls[ds] ??= {})[c] = p.gpuCallsPerCall;
        log(`predict ${ds} ${c}: ${p.ms.toFixed(1)} ms ${JSON.stringify(p.gpuCallsPerCall)}`);
      }
    }

    // The step: a warm-up per cell and contestant, then interleaved rounds.
    const opts = { minSteps: CONFIG.minSteps, minMs: CONFIG.minMs, maxSteps: CONFIG.maxSteps, maxMs: CONFIG.maxMs };
    for (const cell of CONFIG.cells) {
      const key = `${cell.dataset}:${cell.batch}`;
      results.steps[key] = { rounds: [], median: {}, ratios: {}, errors: {} };
      for (const c of CONFIG.warmup ? CONFIG.contestants : []) {
        try {
          const w = await page.evaluate(([c, d, n]) => window.bench.steps(c, d, n, { minSteps: 1, minMs: 0, maxSteps: 1 }), [c, cell.dataset, cell.batch]);
          log(`warm-up ${key} ${c}: ${w.msPerStep.toFixed(1)} ms/step`);
        } catch (e) {
          results.steps[key].errors[c] = e.message.split('\n')[0];
          log(`warm-up ${key} ${c} failed: ${e.message}`);
        }
      }
    }
    const rounds = Math.max(...CONFIG.cells.map((c) => c.rounds));
    for (let round = 0; round < rounds; round++) {
      for (const cell of CONFIG.cells.filter((c) => c.rounds > round)) {
        const key = `${cell.dataset}:${cell.batch}`;
        const order = CONFIG.contestants.filter((c) => !results.steps[key].errors[c]);
        if (round % 2) order.reverse();
        const row = {};
        for (const c of order) {
          try {
            row[c] = await page.evaluate(([c, d, n, o]) => window.bench.steps(c, d, n, o), [c, cell.dataset, cell.batch, opts]);
            log(`round ${round + 1}/${cell.rounds} ${key} ${c}: ${row[c].msPerStep.toFixed(1)} ms/step (${row[c].steps} steps)`);
          } catch (e) {
            results.steps[key].errors[c] = e.message.split('\n')[0];
            log(`round ${round + 1} ${key} ${c} failed: ${e.message}`);
          }
        }
        results.steps[key].rounds.push(row);
      }
    }
    for (const [key, s] of Object.entries(results.steps)) {
      for (const c of CONFIG.contestants) s.median[c] = median(s.rounds.map((r) => r[c]?.msPerStep));
      for (const [a, b] of PAIRS) {
        s.ratios[`${a}/${b}`] = median(s.rounds.map((r) => (r[a] && r[b] ? r[a].msPerStep / r[b].msPerStep : NaN)));
      }
    }
    await page.context().close();

    // Time to the first prediction, each in a fresh page (fresh context: no compiled wasm or pipelines).
    for (let round = 0; round < CONFIG.ttfpRounds; round++) {
      for (const c of CONFIG.contestants) {
        const { page: p, context } = await benchPage(browser, url, results.console);
        try {
          const ms = await p.evaluate(([c]) => window.bench.firstPrediction(c, 'mnist'), [c]);
          (results.firstPrediction.runs[c] ??= []).push(ms);
          log(`first prediction ${c}: ${ms.toFixed(0)} ms`);
        } catch (e) {
          log(`first prediction ${c} failed: ${e.message}`);
        }
        await context.close();
      }
    }
    for (const [c, v] of Object.entries(results.firstPrediction.runs)) results.firstPrediction.median[c] = median(v);

    // Memory after many attacks in a row, each engine in a fresh page.
    for (const c of CONFIG.memory) {
      const { page: p, context } = await benchPage(browser, url, results.console);
      try {
        results.memory[c] = await p.evaluate(([c, params, at]) => window.bench.memory(c, 'mnist', params, at), [c, MEMORY_PARAMS, CONFIG.memoryAt]);
        for (const x of results.memory[c]) log(`memory ${c} after ${x.attacks} attacks: wasm ${x.wasmMemoryBytes}, heap ${x.jsHeapUsedBytes}`);
      } catch (e) {
        results.memory[c] = { error: e.message.split('\n')[0] };
        log(`memory ${c} failed: ${e.message}`);
      }
      await context.close();
    }

    // One complete default C&W attack in the real page.
    // With a baseline: its page first, then today's, on each backend.
    const engines = [...(BASELINE_PATH ? [[`base (${results.baseline.sha})`, BASELINE_PATH]] : []), ['lab', '']];
    for (const b of CONFIG.fullAttack) {
      for (const [engine, path] of engines) {
        log(`complete default C&W attack in the page (${engine}) on ${b}`);
        try {
          const f = await fullAttack(browser, url, b, results.console, path, engine);
          results.fullAttack.push(f);
          log(`full attack ${engine} ${b}: ${f.wallSeconds.toFixed(1)} s, last reported step ${f.lastReportedStep} (${f.progressText})`);
        } catch (e) {
          results.fullAttack.push({ engine, backend: b, error: e.message.split('\n')[0] });
          log(`full attack ${engine} ${b} failed: ${e.message}`);
        }
      }
    }
  } finally {
    await browser.close().catch(() => {});
    await new Promise((r) => server.close(r));
    server.closeAllConnections?.();
  }

  results.torch = await readJson(env('BENCH_TORCH_JSON', ''));
  results.native = await readJson(env('BENCH_NATIVE_JSON', ''));
  if (results.torch?.logprobs) {
    // The same fairness check for the native peer: PyTorch's log-softmax against the lab's.
    for (const [ds, t] of Object.entries(results.torch.logprobs)) {
      for (const [c, l] of Object.entries(results.labLogProbs[ds] ?? {})) {
        let max = 0;
        let compared = 0;
        for (let i = 0; i < Math.min(t.length, l.length); i++) {
          if (l[i] == null || Number.isNaN(l[i]) || t[i] < -80) continue;
          max = Math.max(max, Math.abs(l[i] - t[i]));
          compared++;
        }
        (results.parity[ds] ??= []).push({ lab: c, tfjs: 'torch-cpu (native)', images: l.length / 10, maxAbsLogProbDiff: max, maxAbsProbDiff: NaN, logProbsCompared: compared, sameClass: null });
      }
    }
  }
  const finishedAt = new Date();
  results.finishedAt = finishedAt.toISOString();
  // Other work on the machine slows every contestant; the load average says how much there was.
  results.machine.loadAverageAtEnd = loadavg().map((v) => +v.toFixed(2));
  // pkg/ may be rebuilt while the benchmark runs (the pages load it at different times): say so.
  const pkgAtEnd = (await readFile(join(REPO, 'pkg', '.source-hash'), 'utf8').catch(() => '')).trim() || null;
  if (pkgAtEnd !== results.machine.pkgSourceHash) results.machine.pkgSourceHashAtEnd = pkgAtEnd;
  results.seconds = (finishedAt - startedAt) / 1000;
  const json = JSON.stringify(results, null, 2);
  console.log(json);
  await writeFile(join(REPO, 'tests', 'bench', 'results.json'), json + '\n');
  const out = env('BENCH_OUT', 'BENCHMARKS.md');
  if (out) {
    await writeFile(resolve(REPO, out), report(results));
    log(`wrote ${out}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
