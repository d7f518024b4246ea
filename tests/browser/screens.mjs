// Screenshots of the page's main states, written by the browser tests for people to look at
// (tests/browser/screenshots/, git-ignored; the README names it). ADVLAB_SCREENSHOTS=DIR writes
// them elsewhere.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './harness.mjs';

export const SCREENSHOTS = process.env.ADVLAB_SCREENSHOTS ?? join(REPO, 'tests', 'browser', 'screenshots');

/** Saves a PNG of the page (or of its full length) as SCREENSHOTS/<name>.png; returns the path. */
export async function screenshot(page, name, { fullPage = false } = {}) {
  await mkdir(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}
