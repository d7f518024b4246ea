// Page logic with a stand-in engine (fixtures/mock-advlab.js) and a made-up model: runs without the
// wasm build, so the protocol, error handling, cancel and download paths are tested on every machine
// that has Chromium. The numbers of the stand-in mean nothing; tests against the real engine are in
// the other files.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CHROMIUM,
  MOCK_SAMPLES,
  startLab,
  waitReady,
  readPrediction,
  predictSample,
  uploadAndPredict,
  drawStroke,
  predictionSeq,
  startAttack,
  attackState,
  readAttackResult,
  foreignRequests,
  makeTempDir,
} from './harness.mjs';

const noChromium = await access(CHROMIUM).then(
  () => false,
  () => `no Chromium at ${CHROMIUM}`,
);

describe('page logic (stand-in engine)', { skip: noChromium, timeout: 180_000 }, () => {
  let lab;
  let page;
  let tmp;

  before(async () => {
    tmp = await makeTempDir();
    lab = await startLab({ webgpu: false, mock: true, acceptDownloads: true });
    page = lab.page;
    await waitReady(page, 60_000);
  });

  after(async () => {
    if (lab && process.env.ADVLAB_TEST_VERBOSE) console.log(lab.consoleLines.join('\n'));
    await lab?.close();
  });

  it('starts on MNIST with a backend badge, sample thumbnails and a first prediction', async () => {
    assert.equal(await page.textContent('#backend'), 'CPU fallback');
    assert.match((await page.getAttribute('#backend', 'title')) ?? '', /CPU/);
    assert.equal(await page.locator('#samples [data-sample]').count(), MOCK_SAMPLES);
    const p = await readPrediction(page);
    assert.equal(p.probs.length, 10);
    assert.ok(Math.abs(p.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    const shown = await page.textContent(`[data-class="${p.predicted}"] .prob`);
    assert.match(shown, /^\d\.\d{4}$/);
    assert.ok(Math.abs(Number(shown) - p.probs[p.predicted]) < 1e-4);
    assert.equal(p.predictedName, String(p.predicted));
  });

  it('predicts a clicked sample', async () => {
    const p = await predictSample(page, 3);
    assert.equal(p.source, 'sample:3');
    assert.ok(await page.locator('#samples [data-sample="3"].selected').count());
  });

  it('shows an error for a file that is not an image, and keeps working', async () => {
    const bad = join(tmp, 'not-really.png');
    await writeFile(bad, 'this is plain text, not a PNG\n');
    await page.setInputFiles('#upload', bad);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#error-text'), /not-really\.png/);
    assert.equal(await page.getAttribute('#error', 'role'), 'alert');
    const p = await predictSample(page, 1);
    assert.equal(p.source, 'sample:1');
    assert.equal(await page.locator('#error').isVisible(), false, 'a new input clears the message');
  });

  it('refuses files over 10 MB before decoding them', async () => {
    const big = join(tmp, 'big.png');
    await writeFile(big, Buffer.alloc(10 * 1024 * 1024 + 1));
    await page.setInputFiles('#upload', big);
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#error-text'), /10\.0 MB/);
    await page.click('#error-dismiss');
  });

  it('predicts after a mouse stroke on the drawing canvas', async () => {
    const seq = await predictionSeq(page);
    await drawStroke(page);
    await page.waitForFunction((n) => Number(document.querySelector('#prediction').dataset.seq) > n, seq);
    const p = await readPrediction(page);
    assert.equal(p.source, 'drawing');
    await page.click('#draw-clear');
  });

  it('predicts after a touch stroke', async () => {
    const seq = await predictionSeq(page);
    const box = await page.locator('#draw').boundingBox();
    const pt = (fx, fy) => [{ x: box.x + fx * box.width, y: box.y + fy * box.height, id: 1 }];
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pt(0.3, 0.3) });
    for (const f of [0.35, 0.45, 0.55, 0.65]) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pt(f, f) });
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await cdp.detach();
    await page.waitForFunction((n) => Number(document.querySelector('#prediction').dataset.seq) > n, seq, {
      timeout: 10_000,
    });
    assert.equal((await readPrediction(page)).source, 'drawing');
    await page.click('#draw-clear');
  });

  it('runs an attack with live progress, shows the result and downloads a PNG that predicts as promised', async () => {
    await predictSample(page, 2);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 10, '#p-bss': 2 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 3);
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done', null, {
      timeout: 60_000,
    });
    const st = await attackState(page);
    assert.equal(st.reports, 20);
    const r = await readAttackResult(page);
    assert.ok(r.visible);
    assert.ok(r.l2 > 0 && r.linf > 0);
    assert.match(r.verdict, /8-bit/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#attack-download')]);
    assert.match(download.suggestedFilename(), /\.png$/);
    const file = join(tmp, download.suggestedFilename());
    await download.saveAs(file);
    const png = await readFile(file);
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'a PNG signature');
    assert.equal(png.readUInt32BE(16), 28, 'native width');
    assert.equal(png.readUInt32BE(20), 28, 'native height');
    const again = await uploadAndPredict(page, file);
    assert.equal(again.predicted, r.roundedPredicted);
  });

  it('cancels a running attack within a second', async () => {
    await predictSample(page, 4);
    await startAttack(page, { attack: 'pgd', fields: { '#p-steps': 2000 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 3);
    const t0 = Date.now();
    await page.click('#attack-cancel');
    await page.waitForFunction(
      () => ['idle', 'cancelled'].includes(document.querySelector('#attack-status').dataset.state),
      null,
      { timeout: 1000 },
    );
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(await page.isDisabled('#attack-start'), false);
    // the engine is free again: a prediction goes through
    const p = await predictSample(page, 5, 10_000);
    assert.equal(p.source, 'sample:5');
  });

  it('runs FGSM and a targeted PGD', async () => {
    await startAttack(page, { attack: 'fgsm' });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    await startAttack(page, { attack: 'pgd', targeted: true, target: 7, fields: { '#p-steps': 5 } });
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state === 'done');
    assert.ok((await readAttackResult(page)).visible);
  });

  it('says clearly when the CIFAR-10 model is missing, and MNIST still works', async () => {
    await page.click('#dataset-cifar10');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.textContent('#error-text'), /CIFAR-10 model is not available/);
    await page.click('#dataset-mnist');
    await waitReady(page, 30_000);
    assert.equal(await page.locator('#error').isVisible(), false);
    const p = await predictSample(page, 0);
    assert.equal(p.source, 'sample:0');
  });

  it('makes no request to another origin', () => {
    assert.deepEqual(foreignRequests(lab.requests, lab.url), []);
  });
});

describe('error states (stand-in engine)', { skip: noChromium, timeout: 120_000 }, () => {
  const openWith = async (setup) => {
    const lab = await startLab({ webgpu: false, mock: true, setup });
    await lab.page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, {
      timeout: 30_000,
    });
    return lab;
  };

  it('shows a message when the wasm module cannot be loaded', async () => {
    const lab = await openWith((ctx) => ctx.route(/\/pkg\/advlab\.js/, (r) => r.fulfill({ status: 404, body: 'gone' })));
    try {
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.ok(await lab.page.locator('#error').isVisible());
      assert.match(await lab.page.textContent('#error-text'), /WebAssembly module/);
      assert.ok(await lab.page.locator('#error-reload').isVisible());
    } finally {
      await lab.close();
    }
  });

  it('shows a message when the model download fails', async () => {
    const lab = await openWith((ctx) => ctx.route(/\/models\/mnist\.safetensors/, (r) => r.abort('failed')));
    try {
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.match(await lab.page.textContent('#error-text'), /could not download the mnist weights/i);
    } finally {
      await lab.close();
    }
  });

  it('shows the engine’s message for corrupted weights', async () => {
    const lab = await openWith((ctx) =>
      ctx.route(/\/models\/mnist\.safetensors/, (r) =>
        r.fulfill({ status: 200, contentType: 'application/octet-stream', body: Buffer.alloc(1000, 7) }),
      ),
    );
    try {
      assert.equal(await lab.page.evaluate(() => document.body.dataset.state), 'error');
      assert.match(await lab.page.textContent('#error-text'), /weights could not be loaded.*sha256 mismatch/i);
    } finally {
      await lab.close();
    }
  });

  it('?backend=cpu asks the engine for the CPU even where WebGPU exists', async () => {
    const lab = await startLab({ webgpu: true, mock: true, path: '?backend=cpu' });
    try {
      await waitReady(lab.page, 30_000);
      assert.equal(await lab.page.getAttribute('#backend', 'data-backend'), 'cpu');
    } finally {
      await lab.close();
    }
  });

  it('fits a phone-width screen without horizontal scrolling', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 375, height: 740 } });
    try {
      await waitReady(lab.page, 30_000);
      const { scroll, client } = await lab.page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      assert.ok(scroll <= client, `page is ${scroll}px wide on a ${client}px screen`);
      if (process.env.ADVLAB_SCREENSHOTS) {
        await lab.page.screenshot({ path: join(process.env.ADVLAB_SCREENSHOTS, 'phone.png'), fullPage: true });
      }
    } finally {
      await lab.close();
    }
  });
});
