'use strict';
// HTTP inference server: GET /healthz, POST /predict {"instances": [{feature: number, ...}, ...]}
// -> {"predictions": [{"label": "low", "probabilities": {"high": 0.01, "low": 0.97, "medium": 0.02}}, ...]}.

const http = require('node:http');
const { load, predictOne } = require('./model');

const MAX_BODY = 8 * 1024 * 1024;

function send(res, status, payload) {
  const body = JSON.stringify(payload);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function handler(model) {
  return (req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { status: 'ok' });
    if (req.url !== '/predict') return send(res, 404, { error: 'not found' });
    if (req.method !== 'POST') return send(res, 405, { error: 'POST only' });
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let instances;
      try {
        instances = JSON.parse(Buffer.concat(chunks).toString('utf8')).instances;
      } catch (err) {
        return send(res, 400, { error: `body is not JSON: ${err.message}` });
      }
      if (!Array.isArray(instances)) return send(res, 400, { error: "'instances' must be a list" });
      try {
        return send(res, 200, { predictions: instances.map((a) => predictOne(model, a)) });
      } catch (err) {
        return send(res, 400, { error: err.message });
      }
    });
    return undefined;
  };
}

function main() {
  const model = load();
  const port = Number(process.env.PORT || 8080);
  const server = http.createServer(handler(model));
  server.keepAliveTimeout = 30000;
  server.listen(port, '0.0.0.0', () => console.log(`risk serving on :${port} (${model.classes.join(', ')})`));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

module.exports = { handler };

if (require.main === module) main();
