// The benchmark's report: BENCHMARKS.md from a run's results (tests/bench/results.json), and
// what the report and the run share (the pairs compared, the memory run's parameters, the median).
// Split from run.mjs, which measures; `BENCH_REPORT_FROM=... node tests/bench/run.mjs` rewrites
// the report alone.

export const MEMORY_PARAMS = { attack: 'cw', targeted: false, target: null, steps: 20, binary_search_steps: 2, initial_const: 1, confidence: 0, learning_rate: 0.05, defense: 'none', adaptive: false };

// Ratios lab / peer shown in the report: [lab contestant, peer].
export const PAIRS = [
  ['lab-webgpu', 'tfjs-webgpu'],
  ['lab-webgpu', 'tfjs-webgl'],
  ['lab-cpu', 'tfjs-wasm'],
  ['lab-cpu', 'tfjs-cpu'],
  ['lab-webgpu', 'lab-cpu'],
  ['lab-webgpu', 'base-webgpu'],
  ['lab-cpu', 'base-cpu'],
];

export const median = (v) => {
  const s = [...v].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const fmtMs = (v) => (v == null ? '—' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const fmtRatio = (v) => (v == null ? '—' : v >= 10 ? v.toFixed(0) : v.toFixed(2));
const fmtMiB = (b) => (b == null ? '—' : `${(b / 2 ** 20).toFixed(1)} MiB`);

const SYSTEM_TITLES = {
  specialists: 'Specialists+1 (generalist + specialists, vote-confidence detector; issue 13)',
  detectors: 'Gong + Metzen + Feinman detectors, OR-ensemble (issue 14)',
};

/** The cost of a defended system's adaptive step against the bare classifier's step (issues 13, 14). */
function systemsSection(r, L) {
  const systems = Object.entries(r.systems ?? {});
  if (!systems.length) return;
  L.push('## A defended system\'s adaptive step against the bare classifier\'s');
  L.push('');
  L.push('The lab\'s `attack_many` C&W step as above, on the same images with the same goal and parameters, once against the');
  L.push('bare classifier (`defense: \'none\'`) and once adaptive against the defended system (all its networks in the loss,');
  L.push('candidates judged by the whole system); the two alternate in each round, and the ratio is the median over rounds of');
  L.push('system / bare. Targeted runs aim each image at the class after its own.');
  L.push('');
  L.push('| system | data set, batch | parameters | engine | rounds | bare step | adaptive step | ratio adaptive / bare | WebGPU dispatches per step, bare → adaptive |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  const left = [];
  for (const [name, s] of systems) {
    const title = SYSTEM_TITLES[name] ?? name;
    const params = s.defense ? `\`${s.defense}\`, adaptive, ${s.targeted ? 'targeted' : 'untargeted'}, κ ${s.confidence}` : '—';
    if (s.unavailable) {
      left.push(`- ${title}: not measured: ${s.unavailable}.`);
      continue;
    }
    for (const c of s.contestants) {
      const rounds = s.rounds.filter((x) => x[c]?.bare && x[c]?.system).length;
      const calls = (v) => median(s.rounds.map((x) => x[c]?.[v]?.gpuCallsPerStep?.dispatchWorkgroups));
      const d = c.endsWith('-webgpu') && calls('bare') != null ? `${calls('bare')} → ${calls('system')}` : '—';
      const err = s.errors?.[c] ? ` (failed: ${s.errors[c]})` : '';
      const per = s.rounds.filter((x) => x[c]?.bare && x[c]?.system).map((x) => x[c].system.msPerStep / x[c].bare.msPerStep);
      const range = per.length > 1 ? ` (rounds ${fmtRatio(Math.min(...per))}–${fmtRatio(Math.max(...per))})` : '';
      L.push(`| ${title} | ${s.dataset}, ${s.batch} | ${params} | ${c} | ${rounds} | ${fmtMs(s.median?.[c]?.bare)} | ${fmtMs(s.median?.[c]?.system)}${err} | ${fmtRatio(s.ratio?.[c])}${range} | ${d} |`);
    }
  }
  if (left.length) L.push('', ...left);
  const loads = systems.flatMap(([name, s]) => Object.entries(s.loaded ?? {}).map(([c, l]) => `${name} on ${c}: ${fmtMiB(l.bytes)} of weights loaded in ${fmtMs(l.ms)}`));
  if (loads.length) L.push('', `Loading (fetch + checks + upload, once per engine): ${loads.join('; ')}.`);
  L.push('');
}

export function report(r) {
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
  const load = r.machine.loadAverageAtStart?.[0];
  if (load != null && load > r.machine.cores / 2) {
    L.push(`- **The machine was shared**: other work (builds, training, evaluations) ran on the same ${r.machine.cores} cores during this run`);
    L.push(`  (load average ${r.machine.loadAverageAtStart.join(', ')} at the start, ${(r.machine.loadAverageAtEnd ?? []).join(', ')} at the end), so absolute times are`);
    L.push('  slower and noisier than on an idle machine; only the ratios of measurements taken side by side in this run are meant to be read.');
  }
  L.push(`- WebGPU and WebGL run on SwiftShader (a software GPU on the ${r.machine.cores} CPU cores), so the GPU figures measure fixed costs`);
  L.push('  and kernel counts more than arithmetic; with few steps per round on WebGPU (a step at batch 64 takes seconds) single figures are');
  L.push('  noisy, and CIFAR-10 at batch 64 runs one round only by default (a step of the slowest contestants takes about a minute). More rounds:');
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
  systemsSection(r, L);
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
    // Today's page against the baseline's on each backend, measured one after the other in this run.
    const vs = r.config.fullAttack.map((b) => {
      const lab = r.fullAttack.find((x) => !x.error && x.engine === 'lab' && x.backend === b);
      const base = r.fullAttack.find((x) => !x.error && x.engine.startsWith('base') && x.backend === b);
      return lab && base ? `${b}: ${fmtRatio(lab.wallSeconds / base.wallSeconds)} (speed-up ${fmtRatio(base.wallSeconds / lab.wallSeconds)}x)` : null;
    }).filter(Boolean);
    if (vs.length) L.push('', `Wall time, today's page / the baseline's: ${vs.join('; ')}.`);
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
