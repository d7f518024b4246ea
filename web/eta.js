// Time left of long work (downloads, attacks), from the pace so far: shown once the work has run
// for a second and its end is known, so that the first, noisy estimates are not shown.

/** " · about 12 s left" (or " · about 3 min left"), or '' while too early or when `total` is unknown. */
export function timeLeft(elapsedMs, done, total) {
  if (!(elapsedMs > 1000) || !(done > 0) || !(total > done)) return '';
  const left = (elapsedMs / done) * (total - done);
  return ` · about ${left >= 60_000 ? `${Math.round(left / 60_000)} min` : `${Math.ceil(left / 1000)} s`} left`;
}
