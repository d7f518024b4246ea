// What happened to the attacked system, in words. Every verdict comes from the library: the
// attack's `success` (judged by the attacked system), and for the bare model's example of a
// non-adaptive run the defended system's judgement of it (`judge`: its prediction and whether
// a detector flags it, with each detector's score and threshold). Nothing is recomputed here.

import { className, defensesOf, defenseParts, PART_NAMES } from './state.js';
import { fmtNum } from './util.js';

/** "bit-depth reduction (1-bit depth)" etc., with the data set's squeezer names. */
export function partLabel(ds, part) {
  const d = defensesOf(ds);
  const detail = { 'bit-depth': d?.bit_depth, median: d?.median, detector: null }[part];
  return `${PART_NAMES[part] ?? part}${detail ? ` (${detail})` : ''}`;
}

export function systemLabel(ds, defense) {
  return defenseParts(defense)
    .map((p) => partLabel(ds, p))
    .join(' + ');
}

/** "score 0.31 > threshold 0.05" for the detectors of a verdict (their own flags say which sign). */
export function detectorText(detectors) {
  return (detectors ?? [])
    .map(
      (d) =>
        `${detectors.length > 1 ? `${d.name}: ` : ''}` +
        // A confidence detector (Specialists+1) scores 1 - confidence: shown as the confidence.
        (d.shown_as === 'confidence'
          ? `mean confidence ${(1 - d.score).toFixed(5)} ${d.flagged ? '<' : '≥'} minimum ${(1 - d.threshold).toFixed(5)}`
          : `score ${fmtNum(d.score, 4)} ${d.flagged ? '>' : '≤'} threshold ${fmtNum(d.threshold, 4)}`),
    )
    .join('; ');
}

/**
 * {outcome, text}: outcome "fooled" (the attacked system is fooled), "detected" (the example
 * fools the bare model but a detector flags it) or "not-fooled". `r` is the attack's result,
 * `bare` the bare model's example of a non-adaptive run (or null), `verdict` the defended
 * system's judgement of the example shown (or null), `report` the squeeze report of the example
 * shown (bare-model attacks: what the detector would say).
 */
export function defenseOutcome(run, r, bare, verdict, report) {
  const ds = run.dataset;
  const p = run.params;
  const def = p.defense ?? 'none';
  const cn = (k) => `“${className(ds, k)}”`;
  const orig = Number.isInteger(r.original_predicted) ? r.original_predicted : run.origPredicted;
  const cancelledNote = r.cancelled ? ' (cancelled: best result so far)' : '';
  const parts = defenseParts(def);
  // A system with a detector: the squeezing one, or any the library reports (Specialists+1's vote).
  const hasDetector = parts.includes('detector') || (r.detectors?.length ?? 0) > 0 || (verdict?.detectors?.length ?? 0) > 0;
  const name = systemLabel(ds, def);
  if (def === 'none') {
    let text = r.success
      ? `Target system: the bare model, which is fooled${cancelledNote}.`
      : `Target system: the bare model, which is not fooled${cancelledNote}.`;
    if (report && r.success) {
      const score = `score ${fmtNum(report.score, 4)} ${report.flagged ? '>' : '≤'} threshold ${fmtNum(report.threshold, 4)}`;
      text += report.flagged ? ` The squeezing detector would flag this example (${score})` : ` The squeezing detector would not flag it (${score})`;
      const pre = ['bit-depth', 'median']
        .map((k) => report.views.find((v) => v.preprocessing === k))
        .filter(Boolean)
        .map((v) => `after ${v.name} it says ${cn(v.predicted)}`)
        .join(', ');
      text += pre ? `; ${pre}.` : '.';
    }
    return { outcome: r.success ? 'fooled' : 'not-fooled', text };
  }
  const how = p.adaptive ? 'the adaptive attack' : 'the attack on the bare model';
  if (r.success) {
    const dets = detectorText(r.detectors);
    const text = hasDetector
      ? `Not detected and misclassified${cancelledNote}: ${name} lets ${how}’s example through${dets ? ` (${dets})` : ''} and the model says ${cn(r.predicted)} instead of ${cn(orig)}.`
      : `Misclassified after ${name}${cancelledNote}: the defended system says ${cn(r.predicted)} instead of ${cn(orig)}.`;
    return { outcome: 'fooled', text };
  }
  if (bare?.success && verdict) {
    if (verdict.flagged) {
      return {
        outcome: 'detected',
        text: `Detected by ${parts.length === 1 && parts[0] === 'detector' ? 'the squeezing detector' : name}: the attack fools the bare model (it says ${cn(bare.predicted)} instead of ${cn(orig)}), but the detector flags the example (${detectorText(verdict.detectors)}).`,
      };
    }
    if (verdict.predicted === orig) {
      return {
        outcome: 'not-fooled',
        text: `Not fooled: the attack fools the bare model (it says ${cn(bare.predicted)}), but after ${name} the model says ${cn(verdict.predicted)} again.`,
      };
    }
    return {
      outcome: 'not-fooled',
      text: `Not fooled: the attack fools the bare model (it says ${cn(bare.predicted)}); ${name} says ${cn(verdict.predicted)}, which is not the attack’s goal.`,
    };
  }
  return {
    outcome: 'not-fooled',
    text: p.adaptive
      ? `Not fooled${cancelledNote}: the adaptive attack found no example that ${name} ${hasDetector ? 'misclassifies without flagging' : 'misclassifies'}; try more steps or a larger initial constant.`
      : `Not fooled${cancelledNote}: the attack did not even fool the bare model; try more steps or a larger constant.`,
  };
}

/** A remark when the attack started from an image the model already got wrong (or ''). */
export function wrongStartRemark(run) {
  const { label } = run.input;
  if (label == null || run.origPredicted === label) return '';
  const ds = run.dataset;
  return ` Note: the model already got this sample wrong before the attack (true label “${className(ds, label)}”, it said “${className(ds, run.origPredicted)}”), so this “success” may only have moved it ${
    run.params.targeted && run.params.target === label ? 'back to the true class' : 'elsewhere'
  }.`;
}

