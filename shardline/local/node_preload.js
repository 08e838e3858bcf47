'use strict';
// Loaded with `node --require` before an emulator that has no host option (kinesis-mock,
// kinesalite): every TCP listen() is forced onto the loopback address, so a local test
// server is never reachable from the network.
const net = require('net');

const host = process.env.SHARDLINE_BIND_HOST || '127.0.0.1';
const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.fd === undefined && first.handle === undefined) {
      args[0] = Object.assign({}, first, { host });
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (typeof args[1] === 'string') {
      args[1] = host;
    } else {
      args.splice(1, 0, host);
    }
  }
  return originalListen.apply(this, args);
};
