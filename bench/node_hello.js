// bench/node_hello.js: Node `http` hello server.   node bench/node_hello.js PORT
'use strict';
const http = require('http');
const port = Number(process.argv[2]) || 8080;
const body = 'Hello, World!';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 120000;   // default 5 s would close idle connections in idle.sh
server.headersTimeout = 130000;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', 4096, () => console.error(`node hello on 127.0.0.1:${port}`));
