'use strict';
// Unit tests in the image: the real model file (models/risk.json, pulled from S3 by the build) and pure math.

const test = require('node:test');
const assert = require('node:assert');
const { load, predictOne, softmax } = require('../../src/model');

test('softmax is a probability distribution and keeps the order', () => {
  const p = softmax([1, 3, 2]);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.ok(p[1] > p[2] && p[2] > p[0]);
  assert.deepStrictEqual(softmax([1000, 1000]).map((v) => v.toFixed(3)), ['0.500', '0.500']); // no overflow
});

test('the pulled model file has three classes over six features', () => {
  const m = load();
  assert.deepStrictEqual(m.classes, ['high', 'low', 'medium']);
  assert.strictEqual(m.features.length, 6);
});

test('an applicant at the training mean gets a label and probabilities summing to 1', () => {
  const m = load();
  const mean = Object.fromEntries(m.features.map((f, j) => [f, m.mean[j]]));
  const out = predictOne(m, mean);
  assert.ok(m.classes.includes(out.label));
  const total = Object.values(out.probabilities).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - 1) < 1e-9);
  assert.strictEqual(out.label, Object.entries(out.probabilities).sort((a, b) => b[1] - a[1])[0][0]);
});

test('a missing or non-numeric feature is refused', () => {
  const m = load();
  assert.throws(() => predictOne(m, { income: 50000 }), /feature 'debt_ratio'/);
  assert.throws(() => predictOne(m, [1, 2, 3]), /object of features/);
});
