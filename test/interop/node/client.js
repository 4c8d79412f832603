#!/usr/bin/env node
// Usage: node client.js URL CHECK
//
// Runs one interop check against wsd's /echo with the npm `ws` client and
// exits 0 when it passed. On failure it prints "FAIL: <reason>" on stderr
// and exits 1. test/interop/node_test.go runs every CHECK.
'use strict';

const WebSocket = require('ws');

const BIG = 1 << 20;
const TEXT = 'hello, wsd ✓ — ünïcödé 😀';

class Failure extends Error {}

function fail(msg) {
  throw new Failure(msg);
}

// Client wraps a ws connection with a queue of received messages.
class Client {
  static open(url, perMessageDeflate) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate, maxPayload: 16 * BIG, handshakeTimeout: 5000 });
      const c = new Client(ws);
      ws.once('upgrade', (res) => { c.response = res; });
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (req, res) => reject(new Failure(`handshake answered ${res.statusCode} ${res.statusMessage}`)));
      ws.once('error', (err) => reject(new Failure(`connect ${url}: ${err.message}`)));
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closed = null; // {code, reason} once 'close' fired
    this.closeWaiters = [];
    ws.on('message', (data, isBinary) => this._push({ data, isBinary }));
    ws.on('pong', (data) => this._push({ pong: data }));
    ws.on('error', (err) => this._push({ error: err }));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this._push({ close: this.closed });
      for (const w of this.closeWaiters) w(this.closed);
    });
  }

  _push(ev) {
    const w = this.waiters.shift();
    if (w) w(ev);
    else this.queue.push(ev);
  }

  next(timeoutMs = 15000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Failure(`nothing received within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((ev) => { clearTimeout(timer); resolve(ev); });
    });
  }

  async expectMessage(want, isBinary) {
    const ev = await this.next();
    if (ev.error) fail(`connection error while waiting for the echo: ${ev.error.message}`);
    if (ev.close) fail(`connection closed (code ${ev.close.code} "${ev.close.reason}") while waiting for the echo`);
    if (ev.pong) return this.expectMessage(want, isBinary);
    if (ev.isBinary !== isBinary) fail(`echo has isBinary=${ev.isBinary}, want ${isBinary}`);
    const got = Buffer.isBuffer(ev.data) ? ev.data : Buffer.from(ev.data);
    same(got, want);
  }

  async echo(msg, isBinary) {
    const buf = Buffer.from(msg);
    await send(this.ws, buf, { binary: isBinary, compress: true, fin: true });
    await this.expectMessage(buf, isBinary);
  }

  // fragmented sends buf as several frames: ws.send(chunk, {fin: false})
  // for all but the last chunk. Offsets are bytes, so runes get split.
  async fragmented(buf, isBinary, sizes) {
    const parts = split(buf, sizes);
    for (let i = 0; i < parts.length; i++) {
      await send(this.ws, parts[i], { binary: isBinary, compress: true, fin: i === parts.length - 1 });
    }
    await this.expectMessage(buf, isBinary);
  }

  waitClosed(timeoutMs) {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Failure(`no 'close' event within ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push((c) => { clearTimeout(timer); resolve(c); });
    });
  }
}

function send(ws, data, opts) {
  return new Promise((resolve, reject) => ws.send(data, opts, (err) => (err ? reject(new Failure(`send: ${err.message}`)) : resolve())));
}

function split(buf, sizes) {
  const parts = [];
  let off = 0;
  for (const n of sizes) {
    if (off >= buf.length) break;
    parts.push(buf.subarray(off, Math.min(off + n, buf.length)));
    off += n;
  }
  if (off < buf.length) parts.push(buf.subarray(off));
  return parts;
}

function same(got, want) {
  if (got.equals(want)) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  fail(`echo differs: got ${got.length} bytes, want ${want.length}; first difference at byte ${i}`);
}

function randomBytes(n, seed) {
  // xorshift32: reproducible, incompressible enough.
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function compressibleText(n) {
  let s = '';
  for (let i = 0; s.length < n; i++) {
    s += `{"channel":"prices","offset":${i},"data":{"sym":"WSD","bid":${100 + (i % 7)}.25}}\n`;
  }
  return s;
}

function multibyteText(n) {
  const unit = 'wsd→ü😀€ ';
  return unit.repeat(Math.ceil(n / Buffer.byteLength(unit)));
}

function binary256() {
  const b = Buffer.alloc(512);
  for (let i = 0; i < b.length; i++) b[i] = i & 0xff;
  return b;
}

function requireDeflate(c) {
  // ws.extensions lists what the server accepted; the 101 response shows it too.
  const header = (c.response && c.response.headers['sec-websocket-extensions']) || '';
  if (!c.ws.extensions.includes('permessage-deflate')) {
    fail(`permessage-deflate not negotiated (offered; --deflate defaults to true): ws.extensions="${c.ws.extensions}", Sec-WebSocket-Extensions: "${header}"`);
  }
  process.stdout.write(`negotiated: ${header}\n`);
}

const checks = {
  async text(url) {
    const c = await Client.open(url, false);
    await c.echo(TEXT, false);
    await c.echo('', false);
    c.ws.terminate();
  },
  async binary(url) {
    const c = await Client.open(url, false);
    await c.echo(binary256(), true);
    await c.echo(randomBytes(65536, 3), true);
    c.ws.terminate();
  },
  async big(url) {
    const c = await Client.open(url, false);
    await c.echo(randomBytes(BIG, 5), true);
    await c.echo(multibyteText(BIG), false);
    c.ws.terminate();
  },
  async fragmented(url) {
    const c = await Client.open(url, false);
    await c.fragmented(Buffer.from(multibyteText(6000)), false, [1, 700, 333, 2049, 5]);
    await c.fragmented(randomBytes(9000, 7), true, [1000, 1, 4000]);
    // a ping between fragments (RFC 6455 5.4)
    const msg = Buffer.from(multibyteText(3000));
    const parts = split(msg, [1000, 1000]);
    await send(c.ws, parts[0], { binary: false, fin: false });
    c.ws.ping(Buffer.from('mid-message'));
    await send(c.ws, parts[1], { binary: false, fin: false });
    await send(c.ws, parts[2], { binary: false, fin: true });
    const ev = await c.next();
    if (!ev.pong) fail(`expected the pong for the ping sent between fragments before the echo, got ${JSON.stringify(Object.keys(ev))}`);
    if (ev.pong.toString() !== 'mid-message') fail(`pong payload "${ev.pong}"`);
    await c.expectMessage(msg, false);
    c.ws.terminate();
  },
  async compressed(url) {
    const c = await Client.open(url, true);
    requireDeflate(c);
    await c.echo('short', false); // below ws's 1 KiB threshold: RSV1=0
    await c.echo(compressibleText(64 << 10), false);
    await c.echo(compressibleText(64 << 10), false);
    await c.echo(Buffer.from(compressibleText(BIG)), true);
    await c.echo(randomBytes(100000, 9), true);
    // compressed and fragmented: the first fragment is over the threshold
    await c.fragmented(Buffer.from(compressibleText(40000) + multibyteText(20000)), false, [5000, 1, 333, 20000]);
    c.ws.terminate();
  },
  async close(url) {
    const c = await Client.open(url, false);
    await c.echo('before close', false);
    const start = Date.now();
    c.ws.close(1000, 'bye');
    // ws emits 'close' once the server's close frame arrived and the server
    // closed TCP; it would wait 30 s for the latter.
    const closed = await c.waitClosed(10000);
    const ms = Date.now() - start;
    if (closed.code !== 1000) fail(`server answered close 1000 "bye" with code ${closed.code} "${closed.reason}" (1005/1006: no close frame)`);
    if (ms > 5000) fail(`close handshake took ${ms} ms: the server did not close TCP after answering the close frame`);
  },
};

async function main() {
  const [url, check] = process.argv.slice(2);
  if (!url || !checks[check]) {
    process.stderr.write(`usage: client.js URL (${Object.keys(checks).join('|')})\n`);
    process.exit(2);
  }
  try {
    await checks[check](url);
  } catch (err) {
    process.stderr.write(`FAIL: ${err instanceof Failure ? err.message : err.stack}\n`);
    process.exit(1);
  }
  process.exit(0);
}

main();
