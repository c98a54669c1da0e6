// The twin's web tier: not Next.js (its build does not fit the CI budget)
// but a Node server with the routes and headers a Next.js production
// server gives the checklist's requests: the HTML page (linking its
// content-hashed stylesheet, build information in the footer),
// /api/health, /_next/static assets with Next's immutable Cache-Control,
// and /images/logo.png from public/. Environment: PORT, COMMIT, VERSION.
'use strict';
const http = require('http');
const crypto = require('crypto');

const commit = process.env.COMMIT || 'unknown';
const version = process.env.VERSION || '1.0.0';
const css = 'body{font-family:sans-serif}footer{color:#666}';
const cssName = crypto.createHash('sha256').update(css).digest('hex').slice(0, 16);
const js = 'self.__BROXIVA_BUILD=' + JSON.stringify({ commit }) + ';';
// A 1x1 PNG.
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
const immutable = 'public, max-age=31536000, immutable';

function page() {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Broxiva</title>`
    + `<link rel="stylesheet" href="/_next/static/css/${cssName}.css" data-precedence="next">`
    + `<script src="/_next/static/chunks/main.js" async></script></head>`
    + `<body><main><h1>Broxiva</h1></main>`
    + `<footer><span>Version: ${version}</span> <span>Commit: ${commit}</span> <span>Environment: production</span></footer>`
    + `</body></html>`;
}

// The process metrics the web tier's ServiceMonitor scrapes.
const client = require('prom-client');
const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

const routes = {
  '/': () => [200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'private, no-cache, no-store, max-age=0, must-revalidate', 'X-Powered-By': 'Next.js' }, page()],
  '/api/health': () => [200, { 'Content-Type': 'application/json' }, JSON.stringify({ status: 'ok' })],
  '/_next/static/chunks/main.js': () => [200, { 'Content-Type': 'application/javascript; charset=UTF-8', 'Cache-Control': immutable }, js],
  [`/_next/static/css/${cssName}.css`]: () => [200, { 'Content-Type': 'text/css; charset=UTF-8', 'Cache-Control': immutable }, css],
  '/images/logo.png': () => [200, { 'Content-Type': 'image/png', 'Cache-Control': 'public, max-age=0' }, png],
};

http.createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/metrics') {
    const text = await registry.metrics();
    res.writeHead(200, { 'Content-Type': registry.contentType });
    res.end(text);
    return;
  }
  const route = routes[path];
  const [status, headers, body] = route ? route() : [404, { 'Content-Type': 'text/html' }, '<h1>404: This page could not be found.</h1>'];
  headers['Content-Length'] = Buffer.byteLength(body);
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}).listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
  console.log(`broxiva-web listening on ${process.env.PORT || 3000}`);
});
