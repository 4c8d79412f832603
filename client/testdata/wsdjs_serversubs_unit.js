// Checks wsd.js's server-side subscriptions against a scripted WebSocket,
// for the cases a real node does not produce on demand (a push for a
// channel held live, a gap). Run by client/wsdjs_serversubs_test.go:
// node wsdjs_serversubs_unit.js ../web/wsd.js; exits 1 on the first
// failed check, printing it.
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
  send(text) { this.sent.push(JSON.parse(text)); }
  close() {}
  push(m) { this.onmessage && this.onmessage({data: JSON.stringify(m)}); }
  drop() { this.onclose && this.onclose({code: 1006, reason: '', wasClean: false}); }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
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

async function main() {
  const c = new WSD.Client('ws://127.0.0.1:1/ws', {WebSocket: MockWS, minBackoff: 1, maxBackoff: 2});
  const evs = [];
  for (const name of ['serverSubscribe', 'serverUnsubscribe', 'publication', 'error', 'recover']) {
    c.on(name, (e) => evs.push({ev: name, e}));
  }
  const of = (name) => evs.filter((x) => x.ev === name).map((x) => x.e);
  await until('connected', () => c.state === 'connected');
  const ws = MockWS.last;

  // A push makes a live subscription at its position.
  ws.push({channel: 'alerts', subscribed: {epoch: 'e1', offset: 4, recovered: false}});
  check(of('serverSubscribe').length === 1 && of('serverSubscribe')[0].offset === 4, 'serverSubscribe', of('serverSubscribe'));
  ws.push({channel: 'alerts', offset: 5, epoch: 'e1', data: 5});
  check(of('publication').length === 1 && of('publication')[0].offset === 5, 'live at once', of('publication'));
  check(c.subscriptions()[0].server === true, 'listed as server-side', c.subscriptions());

  // A second push for a channel held live changes nothing.
  ws.push({channel: 'alerts', subscribed: {epoch: 'e1', offset: 9, recovered: false}});
  ws.push({channel: 'alerts', offset: 6, epoch: 'e1', data: 6});
  check(of('serverSubscribe').length === 1 && of('publication').length === 2, 'a push for a live channel is ignored', evs);

  // subscribe() to it resolves at once and adds the handler.
  const got = [];
  const r = await c.subscribe('alerts', (p) => got.push(p.offset));
  check(r.epoch === 'e1' && ws.sent.length === 0, 'subscribe() to a server-side channel sends nothing', ws.sent);

  // A gap restarts it in place: subscribe server:true since, no unsubscribe.
  ws.push({channel: 'alerts', offset: 8, epoch: 'e1', data: 8});
  check(ws.sent.length === 1, 'one request for the gap', ws.sent);
  const re = ws.sent[0];
  check(re.op === 'subscribe' && re.server === true && re.since.offset === 6 && re.since.epoch === 'e1', 'gap repair', re);
  ws.push({id: re.id, result: {epoch: 'e1', offset: 8, recovered: true}});
  ws.push({channel: 'alerts', offset: 7, epoch: 'e1', data: 7});
  ws.push({channel: 'alerts', offset: 8, epoch: 'e1', data: 8});
  check(JSON.stringify(of('publication').map((p) => p.offset)) === '[5,6,7,8]', 'filled gap', of('publication'));
  check(JSON.stringify(got) === '[7,8]', 'the handler gets them too', got);

  // unsubscribed ends a subscription of the client's own as well.
  const own = c.subscribe('news');
  const sub = ws.sent[ws.sent.length - 1];
  check(sub.op === 'subscribe' && sub.channel === 'news' && sub.server === undefined, 'own subscribe', sub);
  ws.push({id: sub.id, result: {epoch: 'n1', offset: 0, recovered: false}});
  await own;
  ws.push({channel: 'news', unsubscribed: {}});
  check(of('serverUnsubscribe').length === 1 && of('serverUnsubscribe')[0].channel === 'news', 'serverUnsubscribe of an own subscription', evs);
  ws.push({channel: 'news', offset: 1, epoch: 'n1', data: 1});
  check(!of('publication').some((p) => p.channel === 'news'), 'nothing after unsubscribed', of('publication'));

  // After a reconnect: the resume goes out with server:true; the server's
  // push meanwhile is ignored; not_subscribed is a serverUnsubscribe.
  const n = ws.sent.length;
  ws.drop();
  await until('reconnected', () => MockWS.last !== ws && c.state === 'connected');
  const ws2 = MockWS.last;
  check(n === ws.sent.length, 'nothing more on the old connection');
  const res = ws2.sent.find((m) => m.channel === 'alerts');
  check(res && res.server === true && res.since.offset === 8, 'resume', ws2.sent);
  ws2.push({channel: 'alerts', subscribed: {epoch: 'e1', offset: 12, recovered: false}});
  check(of('serverSubscribe').length === 1, 'the push during the resume is ignored', of('serverSubscribe'));
  ws2.push({id: res.id, error: {code: 'not_subscribed', message: 'no'}});
  check(of('serverUnsubscribe').length === 2 && of('serverUnsubscribe')[1].channel === 'alerts', 'not_subscribed ends it', evs);
  check(of('error').length === 0, 'no error event', of('error'));
  check(c.subscriptions().length === 0, 'nothing held', c.subscriptions());
  c.close();
  console.log('ok');
  process.exit(0);
}

main().catch((e) => { console.error('FAIL: ' + (e && e.stack)); process.exit(1); });
