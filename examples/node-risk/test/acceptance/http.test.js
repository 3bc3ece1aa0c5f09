'use strict';
// Runs in a second container against the live service: $MLCI_SERVICE_URL.

const test = require('node:test');
const assert = require('node:assert');

const URL = process.env.MLCI_SERVICE_URL || 'http://localhost:8080';
const APPLICANT = { income: 52000, debt_ratio: 0.31, age: 40, late_payments: 1, utilization: 0.35, tenure: 7 };

async function post(path, body) {
  const res = await fetch(URL + path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

test('healthz answers ok', async () => {
  const res = await fetch(`${URL}/healthz`);
  assert.strictEqual(res.status, 200);
  assert.deepStrictEqual(await res.json(), { status: 'ok' });
});

test('predict returns one label and distribution per applicant', async () => {
  const { status, body } = await post('/predict', { instances: [APPLICANT, { ...APPLICANT, late_payments: 9 }] });
  assert.strictEqual(status, 200);
  assert.strictEqual(body.predictions.length, 2);
  for (const p of body.predictions) {
    assert.ok(['low', 'medium', 'high'].includes(p.label));
    assert.ok(Math.abs(Object.values(p.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-9);
  }
});

test('bad input is a 400 naming the problem', async () => {
  const missing = await post('/predict', { instances: [{ income: 1 }] });
  assert.strictEqual(missing.status, 400);
  assert.match(missing.body.error, /feature 'debt_ratio'/);
  assert.strictEqual((await post('/predict', '{not json')).status, 400);
  assert.strictEqual((await fetch(`${URL}/nope`)).status, 404);
});
