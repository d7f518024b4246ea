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
//   BENCH_SYSTEMS=specialists,detectors
//                            defended systems whose adaptive step is timed against the bare classifier's
//                            (issues 13 and 14): Specialists+1 on MNIST, gong+metzen+feinman on CIFAR-10
//                            (a system this pkg/ cannot load is reported as not measured); "" for none
//   BENCH_SYSTEM_BATCH=1     images per step for them
//   BENCH_SYSTEM_CONTESTANTS=lab-webgpu,lab-cpu
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
import { MEMORY_PARAMS, PAIRS, median, report } from './report.mjs';

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
  systems: list('BENCH_SYSTEMS', 'specialists,detectors'),
  systemBatch: num('BENCH_SYSTEM_BATCH', 1),
  systemContestants: list('BENCH_SYSTEM_CONTESTANTS', 'lab-webgpu,lab-cpu'),
  ttfpRounds: num('BENCH_TTFP_ROUNDS', 1),
  fullAttack: list('BENCH_FULL_ATTACK', 'cpu'),
  memory: list('BENCH_MEMORY', 'lab-cpu'),
  memoryAt: list('BENCH_MEMORY_AT', '5,50').map(Number),
};
// The attack repeated for the memory check: the page's C&W, shortened so that 50 of them fit the run.
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

/**
 * The command line to record: BENCH_COMMAND (make bench sets it) after the knobs given in the
 * environment, so that the report names the run it came from (the JSON paths make passes are left out).
 */
function commandLine() {
  const knobs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_') && !['BENCH_COMMAND', 'BENCH_TORCH_JSON', 'BENCH_NATIVE_JSON', 'BENCH_OUT', 'BENCH_REPORT_FROM'].includes(k))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${/^[\w.,:\/-]*$/.test(v) ? v : `'${v.replace(/'/g, "'\\''")}'`}`);
  return [...knobs, env('BENCH_COMMAND', 'node tests/bench/run.mjs')].join(' ');
}

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

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
// A defended system's adaptive step against the bare classifier's (issues 13 and 14, item 4)
// ---------------------------------------------------------------------------------------------

/**
 * For each system and lab contestant: interleaved rounds of the bare step and the system's
 * adaptive step (same images, goal and parameters; the order alternates by round), so that the
 * ratio system / bare of each round compares two measurements taken side by side.
 */
async function systemSteps(page, results, opts) {
  if (!CONFIG.systems.length) return;
  const known = await page.evaluate(() => window.bench.systems());
  const contestants = CONFIG.systemContestants.filter((c) => CONFIG.contestants.includes(c) && c.startsWith('lab-'));
  for (const name of CONFIG.systems) {
    const sys = known[name];
    const out = (results.systems[name] = { ...(sys ?? {}), batch: CONFIG.systemBatch, contestants, rounds: [], median: {}, ratio: {}, errors: {}, loaded: {} });
    if (!sys) {
      out.unavailable = `unknown system (known: ${Object.keys(known).join(', ')})`;
      continue;
    }
    for (const c of contestants) {
      try {
        const t = Date.now();
        const l = await page.evaluate(([c, n]) => window.bench.loadSystem(c, n), [c, name]);
        if (l.unavailable) {
          out.unavailable = l.unavailable;
          break;
        }
        out.loaded[c] = { bytes: l.bytes, ms: Date.now() - t };
        log(`system ${name} loaded on ${c}: ${l.bytes} bytes in ${Date.now() - t} ms`);
      } catch (e) {
        out.errors[c] = e.message.split('\n')[0];
        log(`system ${name} on ${c} failed to load: ${e.message}`);
      }
    }
    if (out.unavailable) {
      log(`system ${name} not measured: ${out.unavailable}`);
      continue;
    }
    for (let round = 0; round < CONFIG.rounds; round++) {
      const row = {};
      for (const c of contestants.filter((x) => !out.errors[x])) {
        row[c] = {};
        const variants = round % 2 ? ['system', 'bare'] : ['bare', 'system'];
        for (const v of variants) {
          try {
            row[c][v] = await page.evaluate(([c, n, v, b, o]) => window.bench.systemSteps(c, n, v, b, o), [c, name, v, CONFIG.systemBatch, opts]);
            log(`round ${round + 1}/${CONFIG.rounds} ${name} ${c} ${v}: ${row[c][v].msPerStep.toFixed(1)} ms/step (${row[c][v].steps} steps)`);
          } catch (e) {
            out.errors[c] = e.message.split('\n')[0];
            log(`round ${round + 1} ${name} ${c} ${v} failed: ${e.message}`);
          }
        }
      }
      out.rounds.push(row);
    }
    for (const c of contestants) {
      out.median[c] = { bare: median(out.rounds.map((r) => r[c]?.bare?.msPerStep)), system: median(out.rounds.map((r) => r[c]?.system?.msPerStep)) };
      out.ratio[c] = median(out.rounds.map((r) => (r[c]?.bare && r[c]?.system ? r[c].system.msPerStep / r[c].bare.msPerStep : NaN)));
    }
  }
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
    command: commandLine(),
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
    systems: {},
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
    await systemSteps(page, results, opts);
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
