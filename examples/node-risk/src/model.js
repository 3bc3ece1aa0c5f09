'use strict';
// The credit-risk model: a multinomial logistic regression whose weights are the model file models/risk.json
// (pulled from S3 into the image through models.lock). Pure functions, no dependencies.

const fs = require('node:fs');
const path = require('node:path');

function modelPath() {
  const dir = process.env.MLCI_MODELS_DIR || path.join(__dirname, '..', 'models');
  return path.join(dir, 'risk.json');
}

function load(file = modelPath()) {
  const m = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const key of ['features', 'classes', 'mean', 'scale', 'coef', 'intercept']) {
    if (!Array.isArray(m[key])) throw new Error(`${file}: '${key}' is missing or not a list`);
  }
  if (m.coef.length !== m.classes.length || m.coef.some((row) => row.length !== m.features.length)) {
    throw new Error(`${file}: coef must be ${m.classes.length} rows of ${m.features.length} weights`);
  }
  return m;
}

function softmax(z) {
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

// One applicant ({feature: number}) -> {label, probabilities: {class: p}}; a missing or non-numeric feature throws.
function predictOne(m, applicant) {
  if (applicant === null || typeof applicant !== 'object' || Array.isArray(applicant)) {
    throw new TypeError('an applicant is an object of features');
  }
  const x = m.features.map((f, j) => {
    const v = applicant[f];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`feature '${f}' must be a finite number`);
    return (v - m.mean[j]) / m.scale[j];
  });
  const z = m.coef.map((row, k) => row.reduce((acc, w, j) => acc + w * x[j], m.intercept[k]));
  const p = softmax(z);
  let best = 0;
  for (let k = 1; k < p.length; k += 1) if (p[k] > p[best]) best = k;
  return { label: m.classes[best], probabilities: Object.fromEntries(m.classes.map((c, k) => [c, p[k]])) };
}

module.exports = { load, modelPath, predictOne, softmax };
