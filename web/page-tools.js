// The page's tools for people who share, embed, teach and project it: explanations beside the
// panels (explain.js), embed mode (embed.js), the view in the URL and the Share panel (share.js),
// the guided story (story-mode.js) and a large-type option for projectors (?large=1).

import { $ } from './util.js';
import { state, params } from './state.js';
import { setupExplanations } from './explain.js';
import { setupEmbed } from './embed.js';
import { setupShare, restoreFromUrl, startUrlSync } from './share.js';
import { setupStory, openStoryFromUrl } from './story-mode.js';
import { watchEngine } from './recover.js';

function setLargeType(on) {
  document.documentElement.classList.toggle('large-type', on);
  $('#large-button').setAttribute('aria-pressed', String(on));
  const u = new URL(location.href);
  if (on) u.searchParams.set('large', '1');
  else u.searchParams.delete('large');
  if (u.href !== location.href) history.replaceState(history.state, '', u.href);
  window.dispatchEvent(new Event('resize')); // the chart redraws at its new size
}

/** Wires the tools; call before the first data set loads (embed mode hides the page's chrome at once). */
export function setupPageTools() {
  setupExplanations();
  setupEmbed();
  setupShare();
  setupStory();
  $('#large-button').addEventListener('click', () => setLargeType(!document.documentElement.classList.contains('large-type')));
  if (params.get('large') === '1') setLargeType(true);
}

/** Once the first data set is ready: the link's view, then the story step it names. */
export async function restorePageTools() {
  if (state.engine) watchEngine(state.engine); // a lost GPU device moves the page to the CPU
  if (document.body.dataset.state !== 'ready') {
    startUrlSync(); // nothing to restore into; the URL follows whatever the visitor does next
    return;
  }
  await restoreFromUrl();
  await openStoryFromUrl();
}
