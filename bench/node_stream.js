// bench/node_stream.js: Node streaming endpoints for bench/stream.sh.
//   GET /down?n=BYTES (64 KiB chunks, honouring backpressure), PUT|POST /up (counts bytes)
'use strict';
const http = require('http');
const port = Number(process.argv[2]) || 8080;
const CHUNK = 64 * 1024;
const chunk = Buffer.alloc(CHUNK, 'x');

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/down') {
    let left = Number(url.searchParams.get('n')) || 0;
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': left });
    const pump = () => {
      while (left > 0) {
        const c = left >= CHUNK ? chunk : chunk.subarray(0, left);
        left -= c.length;
        if (!res.write(c)) { res.once('drain', pump); return; }
      }
      res.end();
    };
    pump();
  } else if (url.pathname === '/up') {
    let total = 0;
    req.on('data', (c) => { total += c.length; });
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(String(total));
    });
  } else {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 13 });
    res.end('Hello, World!');
  }
});
server.keepAliveTimeout = 120000;
server.requestTimeout = 0;          // a 1 GiB upload may take longer than the default
server.listen(port, '127.0.0.1', 511, () => console.error(`node stream on 127.0.0.1:${port}`));
