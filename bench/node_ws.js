// bench/node_ws.js: Node `ws` echo server (Debian's node-ws: NODE_PATH=/usr/share/nodejs).
//   node bench/node_ws.js PORT        WebSocket echo on /ws; GET / answers 200
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2]) || 8080;
const server = http.createServer((req, res) => { res.writeHead(200); res.end('ws echo'); });
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false, maxPayload: 16 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(port, '127.0.0.1', 4096, () => console.error(`node ws on 127.0.0.1:${port}`));
