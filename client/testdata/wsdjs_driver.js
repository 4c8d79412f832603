// Drives web/wsd.js under Node for client/wsdjs_test.go: the browser's
// online/offline and visibility events are simulated, the ws package plays
// the browser's WebSocket. Commands arrive as JSON lines on stdin; events
// leave as JSON lines on stdout.
'use strict';
const path = require('path');
const readline = require('readline');
const WebSocket = require('ws');

const winListeners = {};
const docListeners = {};
globalThis.addEventListener = (name, fn) => { (winListeners[name] = winListeners[name] || []).push(fn); };
const nav = {onLine: true};
Object.defineProperty(globalThis, 'navigator', {value: nav, configurable: true, writable: true});
globalThis.document = {
  visibilityState: 'visible',
  addEventListener: (name, fn) => { (docListeners[name] = docListeners[name] || []).push(fn); },
};
const fire = (ls, name) => (ls[name] || []).forEach((fn) => fn({type: name}));

const WSD = require(path.resolve(process.argv[3]));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Several URLs (the endpoints of a cluster) come separated by spaces.
const urls = process.argv[2].split(' ');
// WSD_TOKEN: the connection token (a JWT for a real node).
const opts = {WebSocket, token: process.env.WSD_TOKEN || 'js-token', minBackoff: 10, maxBackoff: 100, requestTimeout: 5000};
// WSD_TOKEN_URL: tokens come from that endpoint, through getToken.
const tokenURL = process.env.WSD_TOKEN_URL;
if (tokenURL) {
  opts.getToken = () => fetch(tokenURL).then((r) => (r.ok ? r.text() : Promise.reject(new Error('token endpoint: ' + r.status))));
}
// WSD_CHANNEL_TOKEN_URL: channel tokens come from that endpoint (?channel=).
const channelTokenURL = process.env.WSD_CHANNEL_TOKEN_URL;
if (channelTokenURL) {
  opts.getChannelToken = (ch) => fetch(channelTokenURL + '?channel=' + encodeURIComponent(ch))
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error('channel token endpoint: ' + r.status))));
}
// show: binary data (an ArrayBuffer) goes out as the string "bin:<hex>",
// after checking that the client marked it binary.
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
const show = (p) => {
  const bin = p.data instanceof ArrayBuffer;
  if (bin !== !!p.binary) return 'MISMARKED binary=' + p.binary;
  return bin ? 'bin:' + hex(p.data) : p.data;
};
const fromHex = (h) => new Uint8Array((h.match(/../g) || []).map((x) => parseInt(x, 16)));

const c = new WSD.Client(urls.length > 1 ? urls : urls[0], opts);
c.on('refresh', (r) => out({ev: 'refresh', info: {exp: r.exp}}));
c.on('state', (state, info) => out({ev: 'state', state, info: {
  code: info.code, reason: info.reason, delay: info.delay, offline: !!info.offline, attempt: info.attempt,
  hint: info.hint, retryAfter: info.retryAfter, status: info.status,
}, url: c.url, reconnects: c.reconnects}));
c.on('recover', (r) => out({ev: 'recover', channel: r.channel, recovered: r.recovered, epoch: r.epoch}));
c.on('error', (e) => out({ev: 'error', message: e.message}));
c.on('join', (j) => out({ev: 'join', channel: j.channel, client: j.client}));
c.on('leave', (j) => out({ev: 'leave', channel: j.channel, client: j.client}));
c.on('serverSubscribe', (s) => out({ev: 'serverSubscribe', channel: s.channel, epoch: s.epoch, offset: s.offset}));
c.on('serverUnsubscribe', (s) => out({ev: 'serverUnsubscribe', channel: s.channel}));
// Every channel's publications, server-side subscriptions' included (the
// handlers of subscribe commands report theirs as 'pub').
c.on('publication', (p) => out({ev: 'publication', channel: p.channel, offset: p.offset, epoch: p.epoch, data: show(p)}));

const onPub = (p) => out({ev: 'pub', channel: p.channel, offset: p.offset, epoch: p.epoch, data: show(p)});

const rl = readline.createInterface({input: process.stdin});
rl.on('line', (line) => {
  const m = JSON.parse(line);
  switch (m.cmd) {
    case 'subscribe':
      c.subscribe(m.channel, onPub, m.latest ? {latest: true} : undefined).then((r) => out({ev: 'subscribed', channel: m.channel, result: r}),
        (e) => out({ev: 'subscribe_error', channel: m.channel, code: e.code}));
      break;
    case 'unsubscribe':
      c.unsubscribe(m.channel).then(() => out({ev: 'unsubscribed', channel: m.channel}));
      break;
    case 'publish':
      c.publish(m.channel, m.data, {skipSelf: !!m.skipSelf, idempotencyKey: m.key}).then((r) => out({ev: 'published', tag: m.tag, result: r}),
        (e) => out({ev: 'publish_error', tag: m.tag, code: e.code}));
      break;
    case 'publishBinary':
      c.publishBinary(m.channel, fromHex(m.hex), {skipSelf: !!m.skipSelf, idempotencyKey: m.key}).then((r) => out({ev: 'published', tag: m.tag, result: r}),
        (e) => out({ev: 'publish_error', tag: m.tag, code: e.code}));
      break;
    case 'rpc':
      c.rpc(m.method, m.data).then((r) => out({ev: 'rpc', tag: m.tag, result: r}),
        (e) => out({ev: 'rpc_error', tag: m.tag, code: e.code, message: e.message}));
      break;
    case 'history':
      c.history(m.channel, {limit: m.limit, since: m.since}).then((r) => {
        r.publications = r.publications.map((p) => ({offset: p.offset, data: show(p)}));
        out({ev: 'history', tag: m.tag, result: r});
      },
        (e) => out({ev: 'history_error', tag: m.tag, code: e.code}));
      break;
    case 'presenceStats':
      c.presenceStats(m.channel).then((r) => out({ev: 'presenceStats', tag: m.tag, result: r}),
        (e) => out({ev: 'presenceStats_error', tag: m.tag, code: e.code}));
      break;
    case 'presence':
      c.presence(m.channel).then((r) => out({ev: 'presence', result: r}));
      break;
    case 'offline': nav.onLine = false; fire(winListeners, 'offline'); break;
    case 'online': nav.onLine = true; fire(winListeners, 'online'); break;
    case 'hidden': globalThis.document.visibilityState = 'hidden'; fire(docListeners, 'visibilitychange'); break;
    case 'visible': globalThis.document.visibilityState = 'visible'; fire(docListeners, 'visibilitychange'); break;
    case 'set': c.opts[m.key] = m.value; break;
    case 'close': c.close(); setTimeout(() => process.exit(0), 50); break;
  }
  out({ev: 'ack', cmd: m.cmd});
});
rl.on('close', () => process.exit(0));
