// A JUnit XML reporter for node:test (Node 18 has none built in): one <testcase> per test, failures with their
// message. `node --test --test-reporter=./test/junit-reporter.mjs --test-reporter-destination=$MLCI_JUNIT`.

const esc = (s) => String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' }[c]))
  // eslint-disable-next-line no-control-regex
  .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

export default async function* junit(source) {
  const cases = [];
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (data.details && data.details.type === 'suite') continue; // describe() blocks: their tests are reported
    const error = event.type === 'test:fail' ? (data.details && data.details.error) : null;
    const cause = error && (error.cause || error);
    cases.push({ name: data.name, file: data.file || '', seconds: ((data.details && data.details.duration_ms) || 0) / 1000,
      failure: error ? `${(cause && cause.message) || error.message || 'failed'}` : null, skipped: Boolean(data.skip) });
  }
  const failures = cases.filter((c) => c.failure).length;
  const total = cases.reduce((a, c) => a + c.seconds, 0);
  yield '<?xml version="1.0" encoding="UTF-8"?>\n';
  yield `<testsuites><testsuite name="node:test" tests="${cases.length}" failures="${failures}" errors="0" `
    + `skipped="${cases.filter((c) => c.skipped).length}" time="${total.toFixed(3)}">\n`;
  for (const c of cases) {
    const cls = esc(c.file.split('/').pop() || 'node');
    yield `  <testcase classname="${cls}" name="${esc(c.name)}" time="${c.seconds.toFixed(3)}">`;
    if (c.failure) yield `<failure message="${esc(c.failure.replace(/\s+/g, ' ').trim().slice(0, 300))}">${esc(c.failure)}</failure>`;
    if (c.skipped) yield '<skipped/>';
    yield '</testcase>\n';
  }
  yield '</testsuite></testsuites>\n';
}
