// Native-vs-browser parity of the attack engine (issue 4): the same C&W attack with the same small
// budget on the same ten MNIST test images, once with the native CLI (`lab attack`) and once in the
// page on WebGPU through the worker's batch attack (`attack_many`, the engine of the CLI) as ONE
// batch. The success count must match and the mean L2 of the successes agree within 5%.
//
// The budget is the brief's {cw, 50 steps, 2 binary-search steps} with the page's own defaults for
// the constant and the learning rate (1 and 0.05): with the engine's defaults (0.001 and 0.01) 50
// steps fool none of the ten images, natively or in the page, and an empty mean L2 compares nothing.
// SwiftShader runs WebGPU on the CPU: a step of the batch takes about a second here.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO, LAB_BIN, missingPrerequisites, makeTempDir, useLab } from './harness.mjs';

const execFileP = promisify(execFile);

const COUNT = 10;
const PARAMS = { attack: 'cw', steps: 50, binary_search_steps: 2, initial_const: 1, learning_rate: 0.05, confidence: 0 };
const L2_TOLERANCE = 0.05;

const skip = await missingPrerequisites({ needLab: true });
if (skip) console.log(`# skipping the parity test: ${skip}`);

/** The first `count` samples of the pack the model classifies correctly (as the CLI picks them). */
async function firstCorrectSamples(count) {
  const meta = JSON.parse(await readFile(join(REPO, 'models', 'mnist-samples.json'), 'utf8'));
  const bin = await readFile(join(REPO, 'models', meta.file));
  const n = meta.shape.reduce((a, b) => a * b, 1);
  const predicted = meta.predicted ?? meta.labels;
  const picked = [];
  for (let i = 0; i < meta.count && picked.length < count; i++) if (predicted[i] === meta.labels[i]) picked.push(i);
  assert.equal(picked.length, count, 'enough correctly classified samples');
  const pixels = new Float32Array(count * n);
  picked.forEach((s, k) => {
    for (let j = 0; j < n; j++) pixels[k * n + j] = bin[s * n + j] / 255;
  });
  return { picked, labels: picked.map((s) => meta.labels[s]), pixels };
}

async function nativeAttack(dir) {
  const out = join(dir, 'native.jsonl');
  const args = [
    'attack',
    '--dataset', 'mnist',
    '--attack', 'cw',
    '--steps', String(PARAMS.steps),
    '--binary-search-steps', String(PARAMS.binary_search_steps),
    '--initial-const', String(PARAMS.initial_const),
    '--learning-rate', String(PARAMS.learning_rate),
    '--confidence', String(PARAMS.confidence),
    '--count', String(COUNT),
    '--batch-size', String(COUNT),
    // The sample pack (the first 100 test images), which the page attacks too; the data set
    // itself need not be on a test machine.
    '--data', 'samples',
    '--json', out,
  ];
  await execFileP(LAB_BIN, args, { cwd: REPO, timeout: 300_000, maxBuffer: 16 << 20 });
  const line = (await readFile(out, 'utf8')).trim().split('\n').pop();
  return JSON.parse(line);
}

describe('attack engine: native CLI vs the page on WebGPU', { skip: skip || false, timeout: 900_000 }, () => {
  let lab;

  // ?backend=webgpu: SwiftShader is a software adapter, which the page otherwise passes over.
  useLab({ webgpu: true, path: '?backend=webgpu' }, 400_000, (l) => {
    lab = l;
  });

  it(`C&W on the first ${COUNT} correctly classified test images: same successes, mean L2 within 5%`, { timeout: 600_000 }, async (t) => {
    const page = lab.page;
    assert.equal(await page.getAttribute('#backend', 'data-backend'), 'webgpu', 'the page runs on WebGPU');
    const { picked, labels, pixels } = await firstCorrectSamples(COUNT);

    const t0 = Date.now();
    const native = await nativeAttack(await makeTempDir());
    const nativeSeconds = (Date.now() - t0) / 1000;
    assert.equal(native.images, COUNT);

    const t1 = Date.now();
    const page_ = await page.evaluate(
      async ([px, lb, params]) => {
        let reports = 0;
        let lastStep = 0;
        const r = await window.advlab.attackMany('mnist', Float32Array.from(px), lb, null, params, (m) => {
          reports++;
          lastStep = m.step;
        });
        return { ...r, reports, lastStep };
      },
      [Array.from(pixels), labels, PARAMS],
    );
    const pageSeconds = (Date.now() - t1) / 1000;

    const nativeOk = Math.round(native.success_rate * COUNT);
    const pageOk = page_.success.filter(Boolean).length;
    const summary =
      `samples ${picked.join(',')}; native: ${nativeOk}/${COUNT} fooled, mean L2 ${native.mean_l2} (${nativeSeconds.toFixed(1)} s); ` +
      `page (WebGPU, one batch): ${pageOk}/${COUNT}, mean L2 ${page_.mean_l2} (${pageSeconds.toFixed(1)} s, ${page_.reports} progress reports)`;
    t.diagnostic(summary);
    console.log(`# parity: ${summary}`);

    assert.equal(page_.success.length, COUNT);
    assert.equal(page_.cancelled, false);
    assert.equal(pageOk, nativeOk, 'same number of successes');
    assert.ok(Math.abs(page_.success_rate - native.success_rate) < 1e-9);
    if (nativeOk === 0) {
      assert.equal(page_.mean_l2, null);
    } else {
      assert.ok(Number.isFinite(page_.mean_l2), `page mean L2 ${page_.mean_l2}`);
      const rel = Math.abs(page_.mean_l2 - native.mean_l2) / native.mean_l2;
      assert.ok(rel <= L2_TOLERANCE, `mean L2 differs by ${(rel * 100).toFixed(2)}%: ${summary}`);
    }
    // Every reported success really is misclassified by the page's own prediction.
    page_.success.forEach((ok, k) => {
      if (ok) assert.notEqual(page_.predicted[k], labels[k], `image ${k}`);
    });
  });
});
