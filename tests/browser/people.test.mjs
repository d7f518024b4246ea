// The page for people (stand-in engine): axe-core finds no serious or critical violation on the
// main page, the share panel, the story and an embedded panel; a phone (390x844) never scrolls
// sideways; large type for a projector (1920x1080); magnified images drawn crisp. Each state's
// screenshot goes to tests/browser/screenshots/.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { CHROMIUM, startLab, waitReady, predictSample } from './harness.mjs';
import { screenshot } from './screens.mjs';

const noChromium = await access(CHROMIUM).then(
  () => false,
  () => `no Chromium at ${CHROMIUM}`,
);
const require = createRequire(import.meta.url);
const axePath = (() => {
  try {
    return require.resolve('axe-core/axe.min.js');
  } catch {
    return null;
  }
})();
const skipAxe = noChromium || (axePath ? false : 'axe-core is not installed (npm ci)');

/** axe-core's serious and critical violations on the page as it is now (injected past the CSP by the test driver). */
async function axeViolations(page) {
  const source = await readFile(axePath, 'utf8');
  await page.evaluate(source);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

const noSideScroll = (page) => page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);

async function waitStoryStep(page, n) {
  await page.waitForFunction((k) => document.querySelector('#story-card').dataset.step === String(k) && document.querySelector('#story-card').dataset.state === 'done', n, { timeout: 60_000 });
}

describe('accessibility: axe-core (stand-in engine)', { skip: skipAxe, timeout: 240_000 }, () => {
  it('finds no serious or critical violation on the main page, with the explanations and the share panel open', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 1440, height: 900 } });
    try {
      await waitReady(lab.page, 30_000);
      const page = lab.page;
      assert.deepEqual(await axeViolations(page), []);
      for (const d of await page.$$('details.explain')) await d.evaluate((el) => (el.open = true));
      await page.click('#share-button');
      assert.deepEqual(await axeViolations(page), []);
      await screenshot(page, 'desktop-1440x900-share');
    } finally {
      await lab.close();
    }
  });

  it('finds none in the story after an attack step, nor in an embedded panel', async () => {
    const lab = await startLab({ webgpu: false, mock: true, path: '?story=2' });
    try {
      await waitReady(lab.page, 30_000);
      await waitStoryStep(lab.page, 2);
      assert.deepEqual(await axeViolations(lab.page), []);
      await lab.page.goto(`${lab.url}?embed=attack&sample=3`);
      await waitReady(lab.page, 30_000);
      assert.deepEqual(await axeViolations(lab.page), []);
    } finally {
      await lab.close();
    }
  });
});

describe('layouts: phone, projector (stand-in engine)', { skip: noChromium, timeout: 240_000 }, () => {
  it('a 390x844 phone never scrolls sideways: the page, the share panel, the story, an embed', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 390, height: 844 } });
    try {
      const page = lab.page;
      await waitReady(page, 30_000);
      let [scroll, client] = await noSideScroll(page);
      assert.ok(scroll <= client, `page: ${scroll}px wide on ${client}px`);
      await screenshot(page, 'phone-390x844', { fullPage: true });
      await page.click('#share-button');
      [scroll, client] = await noSideScroll(page);
      assert.ok(scroll <= client, `share panel: ${scroll}px wide on ${client}px`);
      await page.click('#share-close');
      await page.click('#story-button');
      await waitStoryStep(page, 1);
      await page.click('#story-next');
      await waitStoryStep(page, 2);
      [scroll, client] = await noSideScroll(page);
      assert.ok(scroll <= client, `story: ${scroll}px wide on ${client}px`);
      await screenshot(page, 'phone-390x844-story');
      await page.goto(`${lab.url}?embed=squeeze`);
      await waitReady(page, 30_000);
      [scroll, client] = await noSideScroll(page);
      assert.ok(scroll <= client, `embed: ${scroll}px wide on ${client}px`);
    } finally {
      await lab.close();
    }
  });

  it('large type for a projector at 1920x1080: bigger text, no sideways scroll, kept in the link', async () => {
    const lab = await startLab({ webgpu: false, mock: true, viewport: { width: 1920, height: 1080 } });
    try {
      const page = lab.page;
      await waitReady(page, 30_000);
      const size = () => page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
      const normal = await size();
      await page.click('#large-button');
      assert.equal(await page.getAttribute('#large-button', 'aria-pressed'), 'true');
      const large = await size();
      assert.ok(large >= 20 && large > normal, `${normal}px -> ${large}px`);
      assert.match(page.url(), /[?&]large=1/);
      const [scroll, client] = await noSideScroll(page);
      assert.ok(scroll <= client, `${scroll}px wide on ${client}px`);
      const start = await page.evaluate(() => document.querySelector('#attack-start').getBoundingClientRect().bottom);
      assert.ok(start <= 1080, `Start attack ends at ${start}px`);
      await screenshot(page, 'projector-1920x1080-large-type');
      // A shared link keeps it.
      await page.click('#share-button');
      const link = await page.inputValue('#share-link');
      assert.match(link, /[?&]large=1/);
      await page.goto(link);
      await waitReady(page, 30_000);
      assert.ok((await size()) >= 20);
    } finally {
      await lab.close();
    }
  });

  it('draws magnified images crisp (image-rendering: pixelated)', async () => {
    const lab = await startLab({ webgpu: false, mock: true, path: '?embed=attack' });
    try {
      const page = lab.page;
      await waitReady(page, 30_000);
      await page.goto(lab.url);
      await waitReady(page, 30_000);
      await predictSample(page, 1);
      await page.locator('#squeeze-views canvas').first().waitFor();
      const blurry = await page.evaluate(() =>
        ['#model-input', '#adv-image', '#perturbation', '#samples canvas', '#squeeze-views canvas']
          .flatMap((sel) => Array.from(document.querySelectorAll(sel)).map((c) => [sel, getComputedStyle(c).imageRendering]))
          .filter(([, r]) => r !== 'pixelated'),
      );
      assert.deepEqual(blurry, []);
    } finally {
      await lab.close();
    }
  });
});
