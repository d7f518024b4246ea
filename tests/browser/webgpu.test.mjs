// The page on WebGPU (SwiftShader in headless Chromium): prediction against the native reference,
// drawing, a short attack, and no request leaving the page's origin. SwiftShader is slow: generous
// timeouts, few attack steps.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  missingPrerequisites,
  readPrediction,
  predictSample,
  predictionSeq,
  drawStroke,
  labPredict,
  assertClose,
  startAttack,
  attackState,
  readAttackResult,
  foreignRequests,
  switchDataset,
  squeezeSeq,
  waitSqueeze,
  useLab,
} from './harness.mjs';

const skip = await missingPrerequisites({ needLab: true });
if (skip) console.log(`# skipping WebGPU browser tests: ${skip}`);

describe('page on WebGPU', { skip: skip || false, timeout: 900_000 }, () => {
  let lab;
  let page;

  // ?backend=webgpu: SwiftShader is a software adapter, which the page otherwise passes over
  // for the CPU fallback (page.test.mjs checks that choice).
  useLab({ webgpu: true, path: '?backend=webgpu' }, 400_000, (l) => {
    lab = l;
    page = l.page;
  });

  it('runs on WebGPU and says so', async () => {
    assert.equal(await page.getAttribute('#backend', 'data-backend'), 'webgpu');
    assert.equal((await page.textContent('#backend')).trim(), 'WebGPU (software adapter)', 'SwiftShader is named as software');
    const title = (await page.getAttribute('#backend', 'title')) ?? '';
    assert.match(title, /asked for \(\?backend=webgpu\).*software one/, 'tooltip says why, in words');
    assert.doesNotMatch(title, /[{}]/, 'no Rust debug string');
  });

  it('predicts sample 0 like the native build (each probability within 1e-3)', async () => {
    const p = await predictSample(page, 0, 300_000);
    const native = await labPredict(['--dataset', 'mnist', '--sample', '0']);
    assertClose(p.probs, native.probabilities, 1e-3, 'probabilities');
    assert.equal(p.predicted, native.predicted);
    assert.equal(p.predictedName, (await page.textContent(`[data-class="${p.predicted}"] .name`)).trim());
    const shown = await page.textContent(`[data-class="${native.predicted}"] .prob`);
    assert.ok(Math.abs(Number(shown) - native.probabilities[native.predicted]) < 1e-3, `bar shows ${shown}`);
  });

  it('predicts after a mouse stroke on the drawing canvas', async () => {
    const seq = await predictionSeq(page);
    await drawStroke(page);
    await page.waitForFunction(
      (n) => {
        const el = document.querySelector('#prediction');
        return Number(el.dataset.seq) > n && el.dataset.source === 'drawing';
      },
      seq,
      { timeout: 300_000 },
    );
    const p = await readPrediction(page);
    assert.equal(p.probs.length, 10);
    assert.ok(Math.abs(p.probs.reduce((a, b) => a + b, 0) - 1) < 1e-3);
    await page.click('#draw-clear');
  });

  it('completes a short C&W attack', async () => {
    await predictSample(page, 0, 300_000);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 3, '#p-bss': 1 } });
    await page.waitForFunction(
      () => ['done', 'cancelled', 'error'].includes(document.querySelector('#attack-status').dataset.state),
      null,
      { timeout: 600_000 },
    );
    const st = await attackState(page);
    assert.equal(st.status, 'done', `attack ended as ${st.statusText} ${st.error}`);
    assert.ok(st.reports >= 1, 'at least one progress report');
    const r = await readAttackResult(page);
    assert.ok(r.visible);
    if (r.success) {
      assert.ok(r.l2 > 0 && r.linf > 0);
      assert.ok(Number.isInteger(r.roundedPredicted), 'the 8-bit check of the example');
    } else {
      // 3 steps may not be enough: the page says so instead of an L2 of 0 for the original.
      assert.equal(await page.textContent('#adv-l2'), '–');
      assert.match(await page.textContent('#adv-verdict'), /failed: no adversarial example found/);
    }
  });

  it('switches to CIFAR-10: downloads its model only then, with a loading state, and predicts a sample like the native build', async () => {
    const weights = (urls) => urls.filter((u) => /\/models\/cifar10\.safetensors/.test(u));
    assert.deepEqual(weights(lab.requests), [], 'no CIFAR-10 weights before the switch');
    const states = await switchDataset(page, 'cifar10', 400_000);
    assert.ok(states.includes('loading'), `a loading state was shown (states: ${states.join(', ')})`);
    assert.equal(weights(lab.requests).length, 1, 'the weights were downloaded once');
    const canvas = await page.evaluate(() => {
      const c = document.querySelector('#model-input');
      return [c.width, c.height];
    });
    assert.deepEqual(canvas, [32, 32]);

    const sqSeq = await squeezeSeq(page);
    const p = await predictSample(page, 3, 300_000);
    const native = await labPredict(['--dataset', 'cifar10', '--sample', '3']);
    assertClose(p.probs, native.probabilities, 1e-3, 'CIFAR-10 probabilities');
    assert.equal(p.predicted, native.predicted);
    assert.equal(p.predictedName, native.class);
    const names = await page.$$eval('#bars .name', (els) => els.map((e) => e.textContent.trim()));
    assert.deepEqual(names, ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);

    // CIFAR-10's own feature-squeezing defenses (models/cifar10-squeeze.json): 5-bit depth and
    // 2x2 median in the detector, 3-bit depth as preprocessing; colour views of 32x32.
    const sq = await waitSqueeze(page, 'input', sqSeq, 300_000);
    assert.equal(sq.available, 'true', sq.note);
    assert.deepEqual(sq.views.map((v) => v.name).sort(), ['2x2 median', '3-bit depth', '5-bit depth']);
    for (const v of sq.views) {
      assert.equal(v.canvas.width, 32);
      assert.ok(v.l1 >= 0 && v.l1 <= 2, `${v.name} L1 ${v.l1}`);
    }
    assert.ok(['true', 'false'].includes(sq.flagged));

    // Back to MNIST: its model is kept, nothing is downloaded again.
    const before = lab.requests.length;
    await switchDataset(page, 'mnist');
    assert.equal(lab.requests.filter((u, i) => i >= before && /\.safetensors/.test(u)).length, 0);
    assert.equal((await predictSample(page, 0, 300_000)).source, 'sample:0');
  });

  it('makes no request to another origin', () => {
    assert.ok(lab.requests.length > 0);
    assert.deepEqual(foreignRequests(lab.requests, lab.url), []);
  });
});
