// The real engine on WebGPU (SwiftShader): a story step runs a short attack there; then a lost GPU
// device during an attack (GPUDevice.destroy() on the engine's device mid-attack). The page moves
// to the CPU fallback without a reload, keeps the image and the attack's settings, says what
// happened, and attacks again on the CPU.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrerequisites, useLab, readAttackResult, predictSample } from './harness.mjs';

const skip = await missingPrerequisites();
if (skip) console.log(`# skipping the device-loss test: ${skip}`);

describe('a lost GPU device (real engine, WebGPU)', { skip: skip || false, timeout: 900_000 }, () => {
  let page;
  useLab({ webgpu: true, path: '?backend=webgpu&sample=4&defense=none&steps=40&binary_search_steps=1' }, 400_000, (l) => {
    page = l.page;
  });

  it('a story step runs a short attack on WebGPU, and says so', async () => {
    await page.waitForFunction(() => document.querySelector('#prediction').dataset.source === 'sample:4', null, { timeout: 300_000 });
    await page.click('#story-button');
    await page.waitForFunction(() => document.querySelector('#story-card').dataset.state === 'done', null, { timeout: 300_000 });
    await page.click('#story-next');
    await page.waitForFunction(() => document.querySelector('#story-card').dataset.step === '2' && document.querySelector('#story-card').dataset.state === 'done', null, { timeout: 600_000 });
    assert.deepEqual(await page.evaluate(() => [document.querySelector('#p-steps').value, document.querySelector('#p-bss').value]), ['10', '1']);
    assert.match(await page.textContent('#story-note'), /On WebGPU this step runs a short attack/);
    assert.ok(['fooled', 'not-fooled'].includes(await page.getAttribute('#story-live', 'data-outcome')));
    await page.click('#story-exit');
    await predictSample(page, 4, 300_000);
  });

  it('recovers on the CPU without a reload, keeping the image and the settings', async () => {
    await page.waitForFunction(() => document.querySelector('#prediction').dataset.source === 'sample:4', null, { timeout: 300_000 });
    assert.equal(await page.getAttribute('#backend', 'data-backend'), 'webgpu');
    await page.fill('#p-steps', '40');
    await page.fill('#p-bss', '1');
    const probsBefore = JSON.parse(await page.getAttribute('#prediction', 'data-probs'));
    await page.fill('#p-const', '2');
    await page.evaluate(() => (window.__sameDocument = true)); // a reload would drop it
    await page.click('#attack-start');
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 1, null, { timeout: 300_000 });
    const [worker] = page.workers();
    const destroyed = await worker.evaluate(() => {
      const n = self.advlabGpuDevices.length;
      for (const d of self.advlabGpuDevices) d.destroy();
      return n;
    });
    assert.equal(destroyed, 1, 'the engine had one device');
    await page.waitForFunction(() => ['true', 'false'].includes(document.body.dataset.recovered), null, { timeout: 300_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.recovered), 'true');
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
    assert.equal(await page.getAttribute('#backend', 'data-backend'), 'cpu');
    assert.match(await page.getAttribute('#backend', 'title'), /GPU device stopped working .*moved to the CPU/);
    assert.match(await page.textContent('#error-text'), /attack stopped because the GPU device was lost.*kept your image and settings/);
    assert.equal(await page.getAttribute('#error', 'data-fatal'), 'false');
    // The image, its prediction (now from the CPU) and the settings are as they were.
    assert.equal(await page.getAttribute('#prediction', 'data-source'), 'sample:4');
    const probsAfter = JSON.parse(await page.getAttribute('#prediction', 'data-probs'));
    probsAfter.forEach((p, k) => assert.ok(Math.abs(p - probsBefore[k]) < 1e-3, `class ${k}: ${p} vs ${probsBefore[k]}`));
    assert.deepEqual(
      await page.evaluate(() => [document.querySelector('#p-steps').value, document.querySelector('#p-bss').value, document.querySelector('#p-const').value]),
      ['40', '1', '2'],
    );
    // And the attack runs again, on the CPU.
    await page.click('#error-dismiss');
    await page.click('#attack-start');
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done', null, { timeout: 300_000 });
    assert.equal((await readAttackResult(page)).visible, true);
  });
});
