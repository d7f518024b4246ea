// web/eta.js in Node: the time left of a download or an attack, from the pace so far.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { timeLeft } from '../../web/eta.js';

describe('timeLeft', () => {
  it('extrapolates the pace so far', () => {
    assert.equal(timeLeft(2000, 1_000_000, 5_000_000), ' · about 8 s left');
    assert.equal(timeLeft(10_000, 10, 100), ' · about 2 min left');
    assert.equal(timeLeft(1500, 3, 4), ' · about 1 s left');
  });

  it('says nothing in the first second, without a total, or at the end', () => {
    assert.equal(timeLeft(900, 1, 100), '');
    assert.equal(timeLeft(5000, 1000, 0), '');
    assert.equal(timeLeft(5000, 1000, null), '');
    assert.equal(timeLeft(5000, 100, 100), '');
    assert.equal(timeLeft(5000, 0, 100), '');
  });
});
