// Attacks in the page on the CPU fallback (fast enough for 100s of steps): a C&W run with live
// progress whose downloaded PNG predicts as the page promised, and a cancelled run.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  missingPrerequisites,
  predictSample,
  uploadAndPredict,
  labPredict,
  startAttack,
  attackState,
  readAttackResult,
  makeTempDir,
  useLab,
  cancelAttack,
} from './harness.mjs';

const skip = await missingPrerequisites({ needLab: true });
if (skip) console.log(`# skipping attack browser tests: ${skip}`);

/** A cheap fingerprint of a canvas, to see the adversarial image change. */
const canvasHash = (page, sel) =>
  page.evaluate((s) => {
    const c = document.querySelector(s);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0;
    return h;
  }, sel);

describe('attacks in the page (CPU fallback)', { skip: skip || false, timeout: 900_000 }, () => {
  let lab;
  let page;
  let tmp;

  before(async () => {
    tmp = await makeTempDir();
  });
  useLab({ webgpu: false, acceptDownloads: true }, 300_000, (l) => {
    lab = l;
    page = l.page;
  });

  it('C&W: live progress, a changed prediction, and a PNG that predicts as promised', async () => {
    const before = await predictSample(page, 0);
    await startAttack(page, { attack: 'cw' }); // the page's defaults
    assert.equal((await attackState(page)).status, 'running');

    // progress: the report count grows and the adversarial image changes while it runs
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 1, null, {
      timeout: 120_000,
    });
    const first = await attackState(page);
    const img1 = await canvasHash(page, '#adv-image');
    await page.waitForFunction(
      (n) => {
        const c = Number(document.querySelector('#attack-progress').dataset.count);
        return c > n || document.querySelector('#attack-status').dataset.state !== 'running';
      },
      first.reports,
      { timeout: 120_000 },
    );
    await page.waitForFunction(() => document.querySelector('#attack-status').dataset.state !== 'running', null, {
      timeout: 600_000,
    });
    const st = await attackState(page);
    assert.equal(st.status, 'done', `ended as: ${st.statusText} ${st.error}`);
    assert.ok(st.reports > first.reports, `progress grew: ${first.reports} -> ${st.reports}`);
    assert.notEqual(await canvasHash(page, '#adv-image'), img1, 'the adversarial image changed');

    const r = await readAttackResult(page);
    assert.ok(r.visible, 'result panel shown');
    assert.ok(r.success, 'C&W finds an adversarial example for sample 0');
    assert.notEqual(r.predicted, before.predicted, 'prediction changed');
    assert.ok(r.l2 > 0 && r.linf > 0 && r.linf <= 1);
    assert.match(r.verdict, /after rounding to 8-bit pixels/);
    assert.equal(r.stillAdversarial, r.roundedPredicted !== before.predicted);
    assert.notEqual(
      await page.evaluate(() => document.querySelector('#adv-predicted').textContent.trim()),
      '–',
    );

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#attack-download')]);
    const file = join(tmp, download.suggestedFilename());
    assert.match(file, /\.png$/);
    await download.saveAs(file);
    const png = await readFile(file);
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'PNG signature');
    assert.equal(png.readUInt32BE(16), 28, 'native width');
    assert.equal(png.readUInt32BE(20), 28, 'native height');
    assert.equal(png[24], 8, '8-bit');

    const again = await uploadAndPredict(page, file);
    assert.equal(again.predicted, r.roundedPredicted, 'the re-uploaded PNG predicts as the page promised');
    const native = await labPredict(['--dataset', 'mnist', '--image', file]);
    assert.equal(native.predicted, r.roundedPredicted, 'and so does the native build');
  });

  it('cancel brings the page back to idle and reports how fast', async (t) => {
    await predictSample(page, 1);
    await startAttack(page, { attack: 'cw', fields: { '#p-steps': 2000, '#p-bss': 5 } });
    await page.waitForFunction(() => Number(document.querySelector('#attack-progress').dataset.count) >= 2, null, {
      timeout: 120_000,
    });
    const ms = await cancelAttack(page);
    // Figures, not assertions (the machines are shared): the page answers at once, the engine
    // stops at its next progress report.
    t.diagnostic(`cancel answered in ${ms} ms`);
    assert.equal(await page.isDisabled('#attack-start'), false, 'Start is available again');
    assert.equal(await page.isDisabled('#attack-cancel'), true);
    // the worker stops too: the next request is answered promptly
    const t1 = Date.now();
    const p = await predictSample(page, 2, 30_000);
    assert.equal(p.source, 'sample:2');
    t.diagnostic(`prediction after cancel: ${Date.now() - t1} ms`);
  });
});
