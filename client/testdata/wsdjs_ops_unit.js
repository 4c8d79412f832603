// Checks wsd.js's publish keys, resends, offline queue, skip-self and
// latest handling against a scripted WebSocket, for the orders of events
// a real node does not produce on demand (a push overtaking a skip-self
// publish's reply, a resend window that ran out). Run by
// client/wsdjs_ops_test.go: node wsdjs_ops_unit.js ../web/wsd.js; exits 1
// on the first failed check, printing it.
'use strict';
const path = require('path');
const WSD = require(path.resolve(process.argv[2]));

// MockWS plays the server: tests read what the client sent and push
// messages to it.
class MockWS {
  constructor(url) {
    this.url = url;
    this.sent = [];
    MockWS.last = this;
    setTimeout(() => this.onopen && this.onopen(), 0);
  }
  // A binary frame (a binary publish) is noted as {op: 'publish', binary:
  // true, channel, id, idempotency_key, skip_self, bytes}.
  send(text) { this.sent.push(typeof text === 'string' ? JSON.parse(text) : parseBinaryPublish(text)); }
  // pushBinary sends a binary push (kind 1, or 3: latest) as an ArrayBuffer.
  pushBinary(kind, channel, offset, epoch, bytes) {
    const c = Buffer.from(channel), e = Buffer.from(epoch);
    const f = Buffer.alloc(11 + c.length + e.length + bytes.length);
    f[0] = kind; f[1] = c.length; c.copy(f, 2);
    f.writeBigUInt64BE(BigInt(offset), 2 + c.length);
    f[10 + c.length] = e.length; e.copy(f, 11 + c.length);
    Buffer.from(bytes).copy(f, 11 + c.length + e.length);
    const ab = f.buffer.slice(f.byteOffset, f.byteOffset + f.length);
    this.onmessage && this.onmessage({data: ab});
  }
  close() {}
  push(m) { this.onmessage && this.onmessage({data: JSON.stringify(m)}); }
  drop() { this.onclose && this.onclose({code: 1006, reason: '', wasClean: false}); }
  ops(op) { return this.sent.filter((m) => m.op === op); }
}

function parseBinaryPublish(b) {
  const u = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  check(u[0] === 2, 'binary publish kind', Array.from(u));
  const c = u[1];
  const channel = Buffer.from(u.subarray(2, 2 + c)).toString();
  const hl = u[2 + c];
  const head = JSON.parse(Buffer.from(u.subarray(3 + c, 3 + c + hl)).toString());
  return Object.assign({op: 'publish', binary: true, channel, bytes: Array.from(u.subarray(3 + c + hl))}, head);
}

function check(cond, what, detail) {
  if (!cond) {
    console.error('FAIL: ' + what + (detail === undefined ? '' : ': ' + JSON.stringify(detail)));
    process.exit(1);
  }
}

async function until(what, cond) {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    check(Date.now() < deadline, 'timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 1));
  }
}

// settled reports a promise's outcome as it goes: {ok, v} or {err}.
function settled(p) {
  const s = {};
  p.then((v) => { s.ok = true; s.v = v; }, (e) => { s.err = e; });
  return s;
}

async function connected(c, prev) {
  await until('connected', () => c.state === 'connected' && MockWS.last !== prev);
  return MockWS.last;
}

// subscribeLive subscribes c to ch on ws and answers at offset off.
async function subscribeLive(c, ws, ch, off, opts) {
  const pubs = [];
  const sub = settled(c.subscribe(ch, (p) => pubs.push(p.offset), opts));
  const req = ws.ops('subscribe').filter((m) => m.channel === ch).pop();
  check(req, 'subscribe sent', ws.sent);
  ws.push({id: req.id, result: {epoch: 'e1', offset: off, recovered: false}});
  await until('subscribed ' + ch, () => sub.ok);
  return {pubs, req};
}

async function skipSelf() {
  const c = new WSD.Client('ws://127.0.0.1:1/ws', {WebSocket: MockWS, minBackoff: 1, maxBackoff: 2});
  const ws = await connected(c, null);
  const {pubs} = await subscribeLive(c, ws, 'g', 0);

  // A push past our own skip-self publication, before its reply: held,
  // no gap repair; the reply moves the position over our offset.
  const p1 = settled(c.publish('g', 'own', {skipSelf: true}));
  const pub = ws.ops('publish').pop();
  check(pub.skip_self === true && /^[A-Za-z0-9_-]{16}$/.test(pub.idempotency_key), 'skip_self and a key sent', pub);
  ws.push({channel: 'g', offset: 2, epoch: 'e1', data: 'other'});
  check(pubs.length === 0 && ws.ops('subscribe').length === 1, 'held while the reply is due', {pubs, sent: ws.sent});
  ws.push({id: pub.id, result: {offset: 1, epoch: 'e1'}});
  check(pubs.join() === '2' && ws.ops('subscribe').length === 1, 'delivered after the reply, no repair', {pubs, sent: ws.sent});
  await until('p1', () => p1.ok);
  ws.push({channel: 'g', offset: 3, epoch: 'e1', data: 'next'});
  check(pubs.join() === '2,3', 'live after', pubs);

  // A reply that comes after the push that follows our offset.
  const p2 = settled(c.publish('g', 'own2', {skipSelf: true}));
  const pub2 = ws.ops('publish').pop();
  ws.push({id: pub2.id, result: {offset: 5, epoch: 'e1'}}); // 4 is someone else's, still to come
  ws.push({channel: 'g', offset: 4, epoch: 'e1', data: 'x'});
  ws.push({channel: 'g', offset: 6, epoch: 'e1', data: 'y'});
  check(pubs.join() === '2,3,4,6' && ws.ops('subscribe').length === 1, 'own offset skipped when it comes', {pubs, sent: ws.sent});
  await until('p2', () => p2.ok);

  // A skip-self publish that fails: the held push is a real gap then.
  const p3 = settled(c.publish('g', 'bad', {skipSelf: true}));
  const pub3 = ws.ops('publish').pop();
  ws.push({channel: 'g', offset: 8, epoch: 'e1', data: 'z'});
  check(ws.ops('subscribe').length === 1, 'held', ws.sent);
  ws.push({id: pub3.id, error: {code: 'forbidden', message: 'no'}});
  await until('p3 rejected', () => p3.err);
  const resub = ws.ops('subscribe');
  check(resub.length === 2 && resub[1].since && resub[1].since.offset === 6, 'gap repaired after the failure', ws.sent);

  // Keys: a fresh one per publish, or the caller's.
  settled(c.publish('g', 1));
  settled(c.publish('g', 2, {idempotencyKey: 'mine-1'}));
  const last = ws.ops('publish').slice(-2);
  check(last[0].idempotency_key !== pub.idempotency_key && last[1].idempotency_key === 'mine-1' && last[1].skip_self === undefined, 'keys', last);
  c.close();
}

async function latest() {
  const c = new WSD.Client('ws://127.0.0.1:1/ws', {WebSocket: MockWS, minBackoff: 1, maxBackoff: 2});
  const ws = await connected(c, null);
  const pubs = [];
  const sub = settled(c.subscribe('t', (p) => pubs.push(p.offset), {latest: true}));
  const req = ws.ops('subscribe').pop();
  check(req.latest === true && !req.since, 'latest sent', req);
  // The latest push overtakes the reply (kept as early), then again: once.
  ws.push({channel: 't', offset: 7, epoch: 'e1', data: 'l', latest: true});
  ws.push({id: req.id, result: {epoch: 'e1', offset: 7, recovered: false}});
  ws.push({channel: 't', offset: 7, epoch: 'e1', data: 'l', latest: true});
  ws.push({channel: 't', offset: 8, epoch: 'e1', data: 'm'});
  await until('subscribed', () => sub.ok);
  check(pubs.join() === '7,8', 'latest once, then live', pubs);

  // The resubscribe after a drop resumes with since, without latest.
  ws.drop();
  const ws2 = await connected(c, ws);
  const re = ws2.ops('subscribe').pop();
  check(re.since && re.since.offset === 8 && re.latest === undefined, 'resume without latest', re);
  c.close();
}

async function resendAndQueue() {
  const c = new WSD.Client('ws://127.0.0.1:1/ws', {WebSocket: MockWS, minBackoff: 1, maxBackoff: 2, maxQueuedPublishes: 3});
  const ws = await connected(c, null);
  await subscribeLive(c, ws, 'c', 0);
  const a = settled(c.publish('c', 'a'));
  const first = ws.ops('publish').pop();
  ws.drop();
  // Made while disconnected: queued behind the resend (which counts), the
  // fourth refused.
  const b = settled(c.publish('c', 'b'));
  const d = settled(c.publish('c', 'd'));
  const e = settled(c.publish('c', 'e'));
  await until('e refused', () => e.err);
  check(e.err.code === 'queue_full', 'queue_full', e.err.code);
  const ws2 = await connected(c, ws);
  const sent = ws2.sent.map((m) => m.op + ':' + (m.data || m.channel));
  check(sent.join() === 'subscribe:c,publish:a,publish:b,publish:d', 'resubscribe, resend, then the queue in order', sent);
  const [again, pb, pd] = ws2.ops('publish');
  check(again.idempotency_key === first.idempotency_key, 'resent with its key', [first, again]);
  ws2.push({id: again.id, result: {offset: 1, epoch: 'e1'}});
  ws2.push({id: pb.id, result: {offset: 2, epoch: 'e1'}});
  ws2.push({id: pd.id, result: {offset: 3, epoch: 'e1'}});
  await until('a, b, d resolved', () => a.ok && b.ok && d.ok);
  check(a.v.offset === 1 && b.v.offset === 2 && d.v.offset === 3, 'offsets', [a, b, d]);

  // Past the resend window a dropped publish fails instead.
  const realNow = Date.now;
  const f = settled(c.publish('c', 'f'));
  Date.now = () => realNow() + 101000;
  try {
    ws2.drop();
  } finally {
    Date.now = realNow;
  }
  // Queued while disconnected, then the client is closed: rejected.
  const g = settled(c.publish('c', 'g'));
  c.close();
  await until('f and g rejected', () => f.err && g.err);
  check(f.err.code === 'connection_lost', 'not resent after 100 s', f.err.code);
  check(g.err.code === 'closed', 'queued rejected on close', g.err.code);
}

// Binary pushes follow the JSON rules (shared offsets, latest once, gap
// repair); a binary publish is one frame whose head carries the id, key
// and skip_self, resent with its key after a drop.
async function binary() {
  const c = new WSD.Client('ws://127.0.0.1:1/ws', {WebSocket: MockWS, minBackoff: 1, maxBackoff: 2});
  const ws = await connected(c, null);
  const got = [];
  const sub = settled(c.subscribe('g', (p) => got.push(p.offset + (p.binary ? ':bin:' + Array.from(new Uint8Array(p.data)).join('.') : ':' + p.data) + (p.latest ? ':L' : '')), {latest: true}));
  const req = ws.ops('subscribe').pop();
  ws.pushBinary(3, 'g', 5, 'e1', [9, 9]); // the latest, before the reply
  ws.push({id: req.id, result: {epoch: 'e1', offset: 5, recovered: false}});
  ws.pushBinary(3, 'g', 5, 'e1', [9, 9]); // a repeat
  ws.push({channel: 'g', offset: 6, epoch: 'e1', data: 'j'});
  ws.pushBinary(1, 'g', 7, 'e1', [1, 2, 3]);
  ws.pushBinary(1, 'g', 7, 'e1', [1, 2, 3]); // a duplicate
  await until('subscribed', () => sub.ok);
  check(got.join() === '5:bin:9.9:L,6:j,7:bin:1.2.3', 'latest once, then JSON and binary in order', got);
  ws.pushBinary(1, 'g', 9, 'e1', [4]); // a gap: repaired with since 7
  const re = ws.ops('subscribe');
  check(re.length === 2 && re[1].since.offset === 7, 'gap repaired', ws.sent);

  const p = settled(c.publishBinary('g', new Uint8Array([0xde, 0xad]), {skipSelf: true}));
  const first = ws.ops('publish').pop();
  check(first.binary && first.channel === 'g' && first.skip_self === true && first.id > 0 &&
    /^[A-Za-z0-9_-]{16}$/.test(first.idempotency_key) && first.bytes.join() === '222,173', 'binary frame', first);
  ws.drop();
  const ws2 = await connected(c, ws);
  const again = ws2.ops('publish').pop();
  check(again && again.binary && again.idempotency_key === first.idempotency_key && again.bytes.join() === '222,173', 'resent with its key', [first, again]);
  ws2.push({id: again.id, result: {offset: 10, epoch: 'e1'}});
  await until('resolved', () => p.ok);
  check(p.v.offset === 10, 'offset', p.v);
  const bad = settled(c.publishBinary('g', 'text'));
  await until('refused', () => bad.err);
  check(bad.err.code === 'bad_request', 'not bytes', bad.err.code);
  c.close();
}

async function main() {
  await binary();
  await skipSelf();
  await latest();
  await resendAndQueue();
  console.log('ok');
  process.exit(0);
}

main().catch((e) => { console.error('FAIL: ' + (e && e.stack)); process.exit(1); });
