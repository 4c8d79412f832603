/*!
 * wsd.js — browser client for wsd's /ws pub/sub protocol. No dependencies.
 *
 *   <script src="/wsd.js"></script>
 *   <script>
 *     const c = new WSD.Client('/ws', {token: '...'});           // connects at once
 *     c.on('state', (state, info) => console.log(state, info));  // connecting | connected | disconnected | closed
 *     c.on('recover', (r) => { if (!r.recovered) alert('history was reset on ' + r.channel); });
 *     c.on('join', (j) => console.log(j.client, 'joined', j.channel));   // namespaces with join_leave = true
 *     c.on('serverSubscribe', (s) => console.log('the backend subscribed us to', s.channel));
 *     c.on('publication', (pub) => console.log(pub.channel, pub.offset, pub.data)); // every channel's
 *     c.subscribe('chat', (pub) => console.log(pub.offset, pub.data));
 *     c.publish('chat', {text: 'hi'}).then((r) => console.log('landed at', r.offset));
 *     c.subscribe('ticker:ACME', onTick, {latest: true});         // the last price first, then live
 *     c.history('chat', {limit: 50}).then((h) => h.publications.forEach(show)); // {publications, offset, epoch}
 *     c.presenceStats('chat').then((p) => console.log(p.count, 'here')); // {channel, count, connections}
 *     c.publish('game:1', {x: 3}, {skipSelf: true});               // everyone but this connection gets it
 *     c.publishBinary('game:1', new Uint8Array([1, 2]), {skipSelf: true}); // raw bytes, one binary frame
 *     c.subscribe('game:1', (pub) => { if (pub.binary) draw(new DataView(pub.data)); }); // data: an ArrayBuffer
 *   </script>
 *
 * Reconnects on its own: exponential backoff with full jitter (a delay drawn
 * uniformly from [0, min(maxBackoff, minBackoff * 2^attempt)]), reset once a
 * connection stayed up for healthyAfter ms. Goes again at once when the
 * browser comes back online or the page becomes visible; while the browser is
 * offline no timer runs. After a reconnect every channel is subscribed again
 * with "since" = the last publication delivered, so the server pushes what was
 * missed; each offset reaches the handlers exactly once and in order. When the
 * server cannot recover (its history was reset: new epoch), a 'recover' event
 * with recovered:false says so before the new history is delivered. After a
 * close with 1008 "rate limit exceeded" the client stops (state 'closed'), as
 * the protocol asks; after any other close it reconnects. A browser does not
 * tell scripts why an upgrade was refused (401, 403, 503 look the same), so
 * those are retried with the same backoff.
 *
 * Reconnects paced by the server: after a close whose reason carries a retry
 * hint (1012 "restart; retry=3.250" from a node stopping with --drain-spread)
 * the next attempt waits the hint, plus at most a tenth of it (and 250 ms)
 * of jitter, instead of the backoff. Under Node with the ws package, a 503
 * with Retry-After (--max-accept-rate) makes it wait at least that long;
 * browsers hide the answer to a refused upgrade, so there the backoff holds.
 *
 * Publishing exactly once, also offline: every publish carries an
 * idempotency_key (random, or {idempotencyKey: '...'}). When the connection
 * drops before its reply, the publish goes again with the same key on the
 * next connection, for up to 100 s after its first send: the server makes
 * it once and answers the retry with the first one's position. Publishes
 * made while disconnected wait in a queue of at most maxQueuedPublishes
 * (1000 by default; past it publish() rejects with code 'queue_full') and
 * go out in order after the reconnect, after the resubscriptions (and
 * after the resends of those cut off by the drop). publishTimeout (100 s)
 * bounds a publish from the call on, waiting included ('timeout').
 * With skipSelf, the publisher's own connection does not get its
 * publication; its offset counts as seen when the reply comes, and a gap
 * on the channel waits for the replies of such publishes before it is
 * repaired, so the user's own message is not replayed.
 *
 * Tokens: {token: '...'} is sent as ?token= (a browser cannot set headers on a
 * WebSocket upgrade). {getToken: () => fetch('/ws-token').then(r => r.text())}
 * is called before every attempt and again when the server pushes a refresh
 * notice (the token expires soon): the new token goes out with a refresh op,
 * and a 'refresh' event ({exp}) follows its success. Without a refresh the
 * server closes at exp with 3000 "token expired" and the client reconnects
 * with a token from getToken. {getChannelToken: (channel) => ...} gives the
 * channel token of a private channel (docs/protocol.md), before every
 * subscribe, the resubscribes after a reconnect included.
 *
 * Server-side subscriptions: the backend may subscribe the user itself
 * (POST /api/subscribe, the connect proxy's "subscribe"). A 'serverSubscribe'
 * event ({channel, epoch, offset}) says so; the channel's publications then
 * reach the 'publication' event (and the handlers of a later subscribe() to
 * it) exactly once and in order, like a subscription of the client's own.
 * After a reconnect it is resumed with "server":true and "since", so
 * nothing is lost. 'serverUnsubscribe' ({channel}) says the server ended a
 * subscription (any, the client's own too) — also when the backend ended it
 * while the client was away, which the resume finds out. unsubscribe()
 * ends a server-side subscription for this connection only: the server
 * subscribes the next one again while the backend keeps it.
 *
 * Binary publications (docs/protocol.md, "Binary publications"): the
 * socket's binaryType is 'arraybuffer'; a binary push (0x01, or 0x03 for
 * the latest-on-subscribe one) reaches the handlers and the 'publication'
 * event as {channel, offset, epoch, data: ArrayBuffer, binary: true},
 * under the same exactly-once and order rules as JSON pushes (they share
 * the channel's offsets). publishBinary(channel, bytes, {skipSelf,
 * idempotencyKey}) sends the bytes in one binary frame and follows
 * publish's rules (key, resend after a drop, offline queue, timeout).
 * history() gives a binary publication as {offset, data: ArrayBuffer,
 * binary: true} (the server's data_b64, decoded).
 *
 * Several endpoints: new WSD.Client(['wss://a/ws', 'wss://b/ws'], ...) moves
 * to the next URL, in turn, when its node is gone (a failed attempt, a close
 * with 1001, 1012 or 1013, a connection lost without a close frame: 1006)
 * and stays after other closes; subscriptions resume there with "since".
 *
 * Protocol (JSON text frames), see docs/protocol.md:
 *   → {"id":1,"op":"subscribe","channel":"news","since":{"offset":41,"epoch":"e1"}}
 *   → {"id":2,"op":"unsubscribe","channel":"news"}
 *   → {"id":3,"op":"publish","channel":"chat","data":...,"idempotency_key":"k3Xa..."}  (+ "skip_self":true)
 *   → {"id":4,"op":"presence","channel":"chat"}
 *   → {"id":4,"op":"presence_stats","channel":"chat"}
 *   → {"id":4,"op":"history","channel":"chat","limit":50}          (+ "since":{...})
 *   → {"id":1,"op":"subscribe","channel":"ticker:ACME","latest":true}  (first subscribe only)
 *   → {"id":5,"op":"rpc","method":"move","data":...}     (rpc(method, data))
 *   → {"id":5,"op":"refresh","token":"<JWT>"}           (answers a refresh notice)
 *   ← {"id":1,"result":{...}} | {"id":1,"error":{"code":"...","message":"..."}}
 *   ← {"channel":"news","offset":42,"epoch":"e1","data":...}
 *   ← binary frame 01 | len | channel | offset (8 bytes, big-endian) | len | epoch | data  (03: latest)
 *   → binary frame 02 | len | channel | len | {"id":3,"idempotency_key":"...","skip_self":true} | data
 *   ← {"channel":"ticker:ACME","offset":41,"epoch":"e1","data":...,"latest":true}  (offset = the reply's)
 *   ← {"channel":"chat:lobby","join":{"client":"ann"}}     ('join' event)
 *   ← {"channel":"chat:lobby","leave":{"client":"ann"}}    ('leave' event)
 *   ← {"refresh":{"exp":1767225600}}                       (the token expires soon)
 *   ← {"channel":"alerts","subscribed":{"epoch":"e1","offset":7,"recovered":false}}  ('serverSubscribe')
 *   ← {"channel":"alerts","unsubscribed":{}}               ('serverUnsubscribe')
 *   → {"id":6,"op":"subscribe","channel":"alerts","server":true,"since":{...}}  (resumes it after a reconnect)
 */
(function (global) {
  'use strict';

  var DEFAULTS = {
    token: '',            // string, or a function returning a string or a Promise of one (called before every attempt)
    getToken: null,       // function returning a token or a Promise of one: before every attempt (instead of token) and on refresh notices
    getChannelToken: null, // function (channel) returning a channel token (private namespaces), '' or a Promise of one: before every subscribe
    minBackoff: 500,      // ms, base of the exponential backoff
    maxBackoff: 30000,    // ms, cap of the backoff
    healthyAfter: 10000,  // ms a connection must stay up for the backoff to start again from minBackoff
    connectTimeout: 10000, // ms for the upgrade to complete
    requestTimeout: 10000, // ms a presence/history/rpc/unsubscribe may take, waiting for a connection included
    failFast: false,      // true: requests made while disconnected fail at once instead of waiting
    publishTimeout: 100000, // ms a publish may take, the offline queue and resends after drops included
    maxQueuedPublishes: 1000, // publishes waiting for a connection; past it publish() rejects with 'queue_full'
    probeTimeout: 5000,   // ms: on 'online'/visible while connected, a connection that does not answer a probe this fast is replaced
    autoConnect: true,    // connect in the constructor
    WebSocket: null       // WebSocket implementation (default: the browser's)
  };

  function defaultURL(path) {
    var loc = global.location;
    if (!loc) throw new Error('wsd: a URL is needed outside a browser');
    return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + path;
  }

  function resolveURL(url) {
    if (!url) return defaultURL('/ws');
    if (/^wss?:\/\//i.test(url)) return url;
    if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, 'ws');
    if (url.charAt(0) === '/') return defaultURL(url);
    throw new Error('wsd: bad URL ' + url);
  }

  function withToken(url, token) {
    if (!token) return url;
    return url + (url.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token);
  }

  function now() { return Date.now(); }

  // RESEND_WINDOW: how long after its first send a publish is still sent
  // again after a drop (the server remembers idempotency keys for 2 min).
  var RESEND_WINDOW = 100000;

  var B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  // newKey makes a random idempotency key: 12 bytes in base64url.
  function newKey() {
    var b = new Uint8Array(12), c = global.crypto, i;
    if (c && typeof c.getRandomValues === 'function') c.getRandomValues(b);
    else for (i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
    var out = '';
    for (i = 0; i < b.length; i += 3) {
      var n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
      out += B64URL[(n >> 18) & 63] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63] + B64URL[n & 63];
    }
    return out;
  }

  // skipOwn moves s's position over the offsets of its own skip-self
  // publications that come next: they never arrive on this connection.
  function skipOwn(s) {
    for (;;) {
      var i = s.skipped.indexOf(s.pos.offset + 1);
      if (i < 0) break;
      s.pos = {offset: s.pos.offset + 1, epoch: s.pos.epoch};
      s.skipped.splice(i, 1);
    }
    s.skipped = s.skipped.filter(function (o) { return o > s.pos.offset; });
  }

  var MAX_SERVER_WAIT = 600000; // ms: a server's hint or Retry-After is capped at 10 min

  // retryHint reads the retry=S part of a close reason ("restart;
  // retry=3.250", docs/protocol.md) in ms, or returns -1.
  function retryHint(reason) {
    var parts = String(reason || '').split(';');
    for (var i = 0; i < parts.length; i++) {
      var m = /^\s*retry=(\d+(?:\.\d+)?)\s*$/.exec(parts[i]);
      if (m) return Math.min(Math.round(parseFloat(m[1]) * 1000), MAX_SERVER_WAIT);
      if (/^\s*retry=/.test(parts[i])) return -1;
    }
    return -1;
  }

  // retryAfter reads a Retry-After header (whole seconds or an HTTP date)
  // in ms, or returns 0.
  function retryAfter(v) {
    if (v === undefined || v === null) return 0;
    v = String(v).trim();
    if (/^\d+$/.test(v)) return Math.min(parseInt(v, 10) * 1000, MAX_SERVER_WAIT);
    var t = Date.parse(v);
    if (isNaN(t)) return 0;
    return Math.min(Math.max(t - now(), 0), MAX_SERVER_WAIT);
  }

  // nodeGone: after this close or failure the next attempt goes to the next
  // URL. Closes from a node that is alive (1008 slow consumer, 1011, ...)
  // keep the client where it is.
  function nodeGone(info) {
    var code = info && info.code;
    return !code || code === 1001 || code === 1006 || code === 1012 || code === 1013;
  }

  function wsdError(code, message, extra) {
    var e = new Error(message);
    e.code = code;
    if (extra) for (var k in extra) e[k] = extra[k];
    return e;
  }

  // toBytes copies an ArrayBuffer, a typed array or a DataView into a new
  // Uint8Array (the caller may reuse its buffer after publishBinary).
  function toBytes(b) {
    if (b instanceof ArrayBuffer) return new Uint8Array(b.slice(0));
    if (b && ArrayBuffer.isView(b)) return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    return null;
  }

  // utf8 encodes a channel name or a JSON head (ASCII by the protocol;
  // anything else goes as UTF-8).
  function utf8(str) {
    if (typeof TextEncoder === 'function') return new TextEncoder().encode(str);
    var out = new Uint8Array(str.length);
    for (var i = 0; i < str.length; i++) out[i] = str.charCodeAt(i) & 0xff;
    return out;
  }

  function fromUTF8(u8) {
    if (typeof TextDecoder === 'function') return new TextDecoder().decode(u8);
    var s = '';
    for (var i = 0; i < u8.length; i++) s += String.fromCharCode(u8[i]);
    return s;
  }

  // binaryFrame builds a binary publish: 0x02, channel length, channel,
  // head length, head (JSON options), data. Returns null when the channel
  // or the head is longer than 255 bytes.
  function binaryFrame(channel, head, data) {
    var c = utf8(channel), h = utf8(JSON.stringify(head));
    if (!c.length || c.length > 255 || h.length > 255) return null;
    var f = new Uint8Array(3 + c.length + h.length + data.length);
    f[0] = 2;
    f[1] = c.length;
    f.set(c, 2);
    f[2 + c.length] = h.length;
    f.set(h, 3 + c.length);
    f.set(data, 3 + c.length + h.length);
    return f;
  }

  // parseBinaryPush reads a binary push (0x01, or 0x03: the latest on
  // subscribe) into the shape of a JSON push, or returns null.
  function parseBinaryPush(buf) {
    var u8 = new Uint8Array(buf);
    if (u8.length < 11 || (u8[0] !== 1 && u8[0] !== 3)) return null;
    var c = u8[1];
    if (c === 0 || 11 + c > u8.length) return null;
    var v = new DataView(buf);
    var offset = v.getUint32(2 + c) * 4294967296 + v.getUint32(6 + c);
    var e = u8[10 + c];
    if (11 + c + e > u8.length) return null;
    var m = {channel: fromUTF8(u8.subarray(2, 2 + c)), offset: offset, epoch: fromUTF8(u8.subarray(11 + c, 11 + c + e)),
      data: buf.slice(11 + c + e), binary: true};
    if (u8[0] === 3) m.latest = true;
    return m;
  }

  // fromBase64 decodes standard base64 (history's data_b64) to an ArrayBuffer.
  function fromBase64(b64) {
    var bin;
    if (typeof global.atob === 'function') bin = global.atob(b64);
    else if (typeof Buffer === 'function') bin = Buffer.from(b64, 'base64').toString('binary');
    else throw new Error('wsd: no base64 decoder');
    var u8 = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return u8.buffer;
  }

  // Rethrow a listener's exception outside the client, so it shows in the
  // console without breaking delivery.
  function report(err) { setTimeout(function () { throw err; }, 0); }

  function Client(url, opts) {
    if (!(this instanceof Client)) return new Client(url, opts);
    this.opts = {};
    var k;
    for (k in DEFAULTS) this.opts[k] = DEFAULTS[k];
    if (opts) for (k in opts) this.opts[k] = opts[k];
    var list = Array.isArray(url) ? url : [url];
    if (!list.length) throw new Error('wsd: no URL');
    this.urls = [];
    for (k = 0; k < list.length; k++) this.urls.push(resolveURL(list[k]));
    this._ui = 0;                // index in urls of the next attempt
    this.url = this.urls[0];
    this.state = 'disconnected'; // connecting | connected | disconnected | closed
    this.reconnects = 0;         // connections made after the first
    this.attempt = 0;            // failed attempts since the last healthy connection
    this.offline = false;        // the browser says it is offline; reconnecting waits for 'online'
    this._ws = null;
    this._gen = 0;               // connections opened so far
    this._connectedOnce = false;
    this._openedAt = 0;
    this._nextId = 0;
    this._pending = {};          // id -> request sent, waiting for its reply
    this._queue = [];            // requests waiting for a connection
    this._subs = {};             // channel -> subscription
    this._listeners = {};
    this._timer = null;          // backoff timer
    this._connectTimer = null;
    this._closed = !this.opts.autoConnect;
    this._bindBrowserEvents();
    if (this.opts.autoConnect) {
      // After the caller's synchronous setup, so that its listeners see
      // 'connecting' and its subscriptions go out with the first connection.
      var self = this;
      Promise.resolve().then(function () { self._open(); });
    }
  }

  // ---- events ----

  // on(name, fn): 'state' (state, info), 'publication' (pub), 'recover'
  // ({channel, recovered, epoch}), 'join' and 'leave' ({channel, client}:
  // another client's first subscription to a subscribed channel started or
  // its last one ended, in namespaces with join_leave = true; best effort,
  // not replayed after a reconnect: ask presence then), 'refresh' ({exp}:
  // the connection's token was replaced after a refresh notice),
  // 'serverSubscribe' ({channel, epoch, offset}: the server subscribed this
  // client, live from that position), 'serverUnsubscribe' ({channel}: the
  // server ended a subscription, whoever made it), 'error' (err).
  // Returns fn.
  Client.prototype.on = function (name, fn) {
    (this._listeners[name] = this._listeners[name] || []).push(fn);
    return fn;
  };

  Client.prototype.off = function (name, fn) {
    var l = this._listeners[name];
    if (!l) return;
    var i = l.indexOf(fn);
    if (i >= 0) l.splice(i, 1);
  };

  Client.prototype._emit = function (name) {
    var l = this._listeners[name];
    if (!l || !l.length) return;
    var args = Array.prototype.slice.call(arguments, 1);
    l = l.slice();
    for (var i = 0; i < l.length; i++) {
      try { l[i].apply(this, args); } catch (e) { report(e); }
    }
  };

  Client.prototype._setState = function (state, info) {
    this.state = state;
    this._emit('state', state, info || {});
  };

  // ---- browser events ----

  Client.prototype._bindBrowserEvents = function () {
    var self = this;
    if (typeof global.addEventListener === 'function') {
      global.addEventListener('online', function () {
        self.offline = false;
        if (self._closed) return;
        if (self._ws && self.state === 'connected') self._probe();
        else if (!self._ws) self._open();
      });
      global.addEventListener('offline', function () {
        self.offline = true;
        if (self._timer) { // pause the backoff: nothing to reach while offline
          clearTimeout(self._timer);
          self._timer = null;
          if (!self._closed) self._setState('disconnected', {offline: true, attempt: self.attempt});
        }
      });
    }
    var doc = global.document;
    if (doc && typeof doc.addEventListener === 'function') {
      var hiddenAt = 0;
      doc.addEventListener('visibilitychange', function () {
        if (doc.visibilityState !== 'visible') { hiddenAt = now(); return; }
        if (self._closed || self._isOffline()) return;
        if (!self._ws) self._open();
        else if (self.state === 'connected' && hiddenAt && now() - hiddenAt >= 5000) self._probe(); // after a long absence (sleep?)
      });
    }
  };

  Client.prototype._isOffline = function () {
    var nav = global.navigator;
    return this.offline || (nav && nav.onLine === false);
  };

  // A connection may have died silently while the machine slept or the
  // network changed: ask the server something and replace the connection
  // when no answer comes. Any reply proves it alive, an error too ("ping"
  // is not an op servers must know).
  Client.prototype._probe = function () {
    var self = this, ws = this._ws;
    if (!ws || this._probing) return;
    this._probing = true;
    var id = ++this._nextId;
    var timer = setTimeout(function () {
      delete self._pending[id];
      self._probing = false;
      if (self._ws === ws) self._drop(ws, {reason: 'no answer to a probe'});
    }, this.opts.probeTimeout);
    this._pending[id] = {op: 'ping', gen: this._gen, done: function () { clearTimeout(timer); self._probing = false; }};
    this._send(ws, {id: id, op: 'ping'});
  };

  // ---- connection ----

  // connect() starts connecting (again, after close()). Subscriptions made
  // before a close() are resumed with since.
  Client.prototype.connect = function () {
    if (!this._closed) return;
    this._closed = false;
    this._open();
  };

  // reconnectNow() cuts the backoff wait short.
  Client.prototype.reconnectNow = function () {
    if (!this._closed && !this._ws) this._open();
  };

  Client.prototype._open = function () {
    var self = this;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    if (this._closed || this._ws || this._opening) return;
    this._opening = true;
    this._setState('connecting', {attempt: this.attempt});
    this._token().then(function (token) {
      self._opening = false;
      if (self._closed || self._ws) return;
      self._dial(withToken(self.url, token));
    }, function (err) {
      self._opening = false;
      if (self._closed || self._ws) return;
      self._down({error: err, reason: 'token: ' + (err && err.message)});
    });
  };

  Client.prototype._dial = function (url) {
    var self = this;
    var WS = this.opts.WebSocket || global.WebSocket;
    var ws;
    try {
      ws = new WS(url);
    } catch (e) {
      this._down({error: e, reason: String(e && e.message)});
      return;
    }
    try { ws.binaryType = 'arraybuffer'; } catch (e) { /* an implementation without it */ }
    this._ws = ws;
    this._connectTimer = setTimeout(function () {
      if (self._ws === ws && self.state !== 'connected') self._drop(ws, {reason: 'connect timeout'});
    }, this.opts.connectTimeout);
    ws.onopen = function () { if (self._ws === ws) self._onOpen(ws); };
    ws.onmessage = function (ev) { if (self._ws === ws) self._onMessage(ws, ev.data); };
    var refused = null;
    if (typeof ws.on === 'function') {
      // Node's ws package shows a refused upgrade's answer; browsers do not.
      ws.on('unexpected-response', function (req, res) {
        refused = {status: res.statusCode, retryAfter: retryAfter(res.headers && res.headers['retry-after'])};
        ws.terminate(); // a close event (1006) follows
      });
    }
    ws.onclose = function (ev) {
      if (self._ws !== ws) return;
      var info = {code: ev.code, reason: ev.reason, wasClean: ev.wasClean};
      if (refused) { info.status = refused.status; info.retryAfter = refused.retryAfter; }
      self._onClose(ws, info);
    };
    ws.onerror = function () {}; // a close event follows
  };

  // _drop abandons ws at once (its close event may come much later).
  Client.prototype._drop = function (ws, info) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    try { ws.close(); } catch (e) { /* ignore */ }
    this._onClose(ws, info);
  };

  Client.prototype._onOpen = function (ws) {
    clearTimeout(this._connectTimer);
    this._gen++;
    this._openedAt = now();
    if (this._connectedOnce) this.reconnects++;
    this._connectedOnce = true;
    this._setState('connected', {reconnects: this.reconnects});
    if (this._ws !== ws) return; // a listener closed it
    for (var ch in this._subs) this._sendSubscribe(ws, this._subs[ch]);
    var q = this._queue;
    this._queue = [];
    for (var i = 0; i < q.length; i++) this._sendRequest(ws, q[i]);
  };

  Client.prototype._onClose = function (ws, info) {
    clearTimeout(this._connectTimer);
    if (this._ws !== ws) return;
    this._ws = null;
    this._probing = false;
    var gen = this._gen, id, p;
    var wasConnected = this.state === 'connected';
    if (info && info.code === 1008 && info.reason === 'rate limit exceeded') {
      this._closed = true; // the protocol asks clients not to come back after abuse; connect() may
      info.final = true;
    }
    // A publish not answered yet may or may not have been made: it goes
    // again, first in the queue and with the same key, so the server makes
    // it once (within its deduplication window).
    var resend = [];
    for (id in this._pending) {
      p = this._pending[id];
      if (p.gen !== gen) continue;
      delete this._pending[id];
      if (!p.reject) continue;
      if (p.op === 'publish' && !this._closed && now() - p.sentAt <= RESEND_WINDOW) {
        resend.push(p);
        continue;
      }
      clearTimeout(p.timer);
      p.reject(wsdError('connection_lost', 'wsd: connection lost before the reply (the request may or may not have taken effect)'));
    }
    resend.sort(function (a, b) { return a.id - b.id; });
    this._queue = resend.concat(this._queue);
    if (this._closed) this._rejectQueue();
    for (var ch in this._subs) {
      var s = this._subs[ch];
      s.live = false;
      s.reqId = 0;
      s.early = [];
      s.stash = [];
    }
    if (wasConnected && now() - this._openedAt >= this.opts.healthyAfter) this.attempt = 0;
    if (this._closed) {
      this._setState('closed', info);
      return;
    }
    this._down(info);
  };

  // _down reports a lost connection or failed attempt and plans the next one.
  Client.prototype._down = function (info) {
    info = info || {};
    if (this._isOffline()) {
      info.offline = true; // 'online' will reconnect
    } else {
      var self = this;
      info.delay = this._delay(info);
      this._timer = setTimeout(function () { self._timer = null; self._open(); }, info.delay);
    }
    if (nodeGone(info) && this.urls.length > 1) {
      this._ui = (this._ui + 1) % this.urls.length;
      this.url = this.urls[this._ui];
    }
    info.attempt = this.attempt;
    this.attempt++;
    this._setState('disconnected', info);
  };

  // _delay is the wait before the next attempt: the server's retry hint
  // instead of the backoff (the server already spread its clients: only a
  // little jitter on top), or the backoff raised to a Retry-After (whole
  // seconds: up to a second of jitter keeps those refused together apart).
  Client.prototype._delay = function (info) {
    var hint = retryHint(info.reason);
    if (info.code && hint >= 0) {
      info.hint = hint;
      return hint + Math.floor(Math.random() * (Math.min(hint / 10, 250) + 1));
    }
    var cap = Math.min(this.opts.maxBackoff, this.opts.minBackoff * Math.pow(2, this.attempt));
    var delay = Math.floor(Math.random() * (cap + 1));
    if (info.retryAfter > 0) delay = Math.max(delay, info.retryAfter + Math.floor(Math.random() * 1000));
    return delay;
  };

  // close() closes the connection (1000) and stops reconnecting. Waiting
  // requests fail; subscriptions are kept for a later connect().
  Client.prototype.close = function () {
    if (this._closed) return;
    this._closed = true;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    this._rejectQueue();
    var ws = this._ws;
    if (ws) {
      try { ws.close(1000); } catch (e) { /* ignore */ }
      this._drop(ws, {code: 1000, reason: 'closed by the client'});
    } else {
      this._setState('closed', {});
    }
  };

  // _rejectQueue fails the requests waiting for a connection: the client
  // is closed.
  Client.prototype._rejectQueue = function () {
    var q = this._queue;
    this._queue = [];
    for (var i = 0; i < q.length; i++) {
      clearTimeout(q[i].timer);
      q[i].reject(wsdError('closed', 'wsd: client closed'));
    }
  };

  Client.prototype._send = function (ws, msg) {
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      return false; // the close event follows
    }
  };

  // ---- incoming ----

  Client.prototype._onMessage = function (ws, text) {
    var m;
    if (typeof text !== 'string' && text && (text instanceof ArrayBuffer || ArrayBuffer.isView(text))) {
      var buf = text instanceof ArrayBuffer ? text : text.buffer.slice(text.byteOffset, text.byteOffset + text.byteLength);
      m = parseBinaryPush(buf);
      if (!m) this._emit('error', wsdError('bad_message', 'wsd: binary message from the server is not a binary push'));
      else this._onPublication(ws, m);
      return;
    }
    try {
      m = JSON.parse(typeof text === 'string' ? text : String(text));
    } catch (e) {
      this._emit('error', wsdError('bad_message', 'wsd: message from the server is not JSON'));
      return;
    }
    if (!m || typeof m !== 'object') return;
    if (m.id !== undefined && m.id !== null) {
      var p = this._pending[m.id];
      if (!p) return;
      delete this._pending[m.id];
      if (p.done) p.done(); // a probe
      if (p.op === 'subscribe') {
        this._onSubscribeReply(ws, p, m);
      } else if (p.resolve) {
        clearTimeout(p.timer);
        if (m.error) p.reject(wsdError(m.error.code, 'wsd: ' + m.error.code + ': ' + m.error.message, {server: true}));
        else p.resolve(m.result);
      }
      return;
    }
    if (m.error) {
      this._emit('error', wsdError(m.error.code, 'wsd: ' + m.error.code + ': ' + m.error.message, {server: true}));
      return;
    }
    if (m.refresh && typeof m.refresh === 'object') {
      this._refresh(ws);
      return;
    }
    if (typeof m.channel !== 'string') return;
    if (m.subscribed && typeof m.subscribed === 'object') this._onServerSubscribed(m);
    else if (m.unsubscribed) this._onServerUnsubscribed(m.channel);
    else if (m.join || m.leave) this._onJoinLeave(m);
    else this._onPublication(ws, m);
  };

  Client.prototype._onJoinLeave = function (m) {
    if (!this._subs[m.channel]) return; // unsubscribed meanwhile
    if (m.join) this._emit('join', {channel: m.channel, client: String(m.join.client)});
    else this._emit('leave', {channel: m.channel, client: String(m.leave.client)});
  };

  // ---- subscriptions ----

  // _newSub makes the record of a subscription to channel; pos is where
  // its delivery stands ({offset, epoch}), null before the first answer.
  // server: the backend made it (docs/protocol.md, "Server-side
  // subscriptions"), so it is resumed with "server":true.
  Client.prototype._newSub = function (channel) {
    var s = {channel: channel, pos: null, live: false, reqId: 0, resyncs: 0, early: [], handlers: [], done: false, server: false,
      latest: false, latestDue: false, selfPending: 0, skipped: [], stash: [], stashGen: 0};
    s.first = new Promise(function (resolve, reject) { s.resolve = resolve; s.reject = reject; });
    s.first.catch(function () {}); // rejections are the caller's to see
    return s;
  };

  // _dropSub forgets s; a subscribe() still waiting for it is rejected.
  Client.prototype._dropSub = function (s, err) {
    if (this._subs[s.channel] === s) delete this._subs[s.channel];
    if (!s.done) { s.done = true; s.reject(err); }
  };

  // _onServerSubscribed takes a subscription the server made: it is live at
  // once from the push's position. A channel held already is left alone:
  // either it is live, or its own subscribe is on the way (after a
  // reconnect the server pushes again before answering the resubscribe,
  // and that answer governs).
  Client.prototype._onServerSubscribed = function (m) {
    if (this._subs[m.channel]) return;
    var pos = {offset: Number(m.subscribed.offset) || 0, epoch: String(m.subscribed.epoch)};
    var s = this._newSub(m.channel);
    s.server = true;
    s.pos = pos;
    s.live = true;
    s.done = true;
    s.resolve({epoch: pos.epoch, offset: pos.offset, recovered: false});
    this._subs[m.channel] = s;
    this._emit('serverSubscribe', {channel: m.channel, epoch: pos.epoch, offset: pos.offset});
  };

  // _onServerUnsubscribed ends a subscription on the server's word,
  // whoever made it: nothing of the channel follows.
  Client.prototype._onServerUnsubscribed = function (channel) {
    var s = this._subs[channel];
    if (!s) return;
    this._dropSub(s, wsdError('unsubscribed', 'wsd: unsubscribed by the server', {channel: channel}));
    this._emit('serverUnsubscribe', {channel: channel});
  };

  // subscribe(channel, handler?, {since: {offset, epoch}, latest: true}?)
  // subscribes and resolves with the server's answer {epoch, offset,
  // recovered}. handler (and the 'publication' event) gets {channel,
  // offset, epoch, data} for every publication (binary: true with an
  // ArrayBuffer as data; latest: true on the one a latest option brought),
  // exactly once and in order,
  // across reconnects, until unsubscribe() — also when the first subscribe
  // has to wait for a connection. latest (ignored with since): the
  // channel's newest publication, if history keeps it, comes first (its
  // offset is the answer's; only the first subscribe asks, the ones after
  // a reconnect resume with since). Options of a channel already
  // subscribed change nothing. Rejects on an error reply (the
  // subscription is dropped).
  Client.prototype.subscribe = function (channel, handler, options) {
    var s = this._subs[channel];
    if (!s) {
      if (this.opts.failFast && this.state !== 'connected') {
        return Promise.reject(wsdError('not_connected', 'wsd: not connected'));
      }
      s = this._newSub(channel);
      if (options && options.since) s.pos = {offset: Number(options.since.offset), epoch: String(options.since.epoch)};
      else if (options && options.latest) s.latest = true;
      this._subs[channel] = s;
      if (this._ws && this.state === 'connected') this._sendSubscribe(this._ws, s);
    }
    if (handler) s.handlers.push(handler);
    return s.first;
  };

  // unsubscribe(channel, handler?) removes handler; with no handler left (or
  // none given) it ends the subscription. Resolves when the server agreed
  // (at once while disconnected).
  Client.prototype.unsubscribe = function (channel, handler) {
    var s = this._subs[channel];
    if (!s) return Promise.resolve();
    if (handler) {
      var i = s.handlers.indexOf(handler);
      if (i >= 0) s.handlers.splice(i, 1);
      if (s.handlers.length) return Promise.resolve();
    }
    this._dropSub(s, wsdError('unsubscribed', 'wsd: unsubscribed'));
    if (!this._ws || this.state !== 'connected') return Promise.resolve();
    return this._request('unsubscribe', channel, undefined, true).catch(function (e) {
      if (e.code === 'connection_lost') return; // the subscription went with the connection
      throw e;
    });
  };

  // subscriptions() lists the channels and where each one is:
  // [{channel, offset, epoch, live, server}] (server: the backend made it).
  Client.prototype.subscriptions = function () {
    var out = [];
    for (var ch in this._subs) {
      var s = this._subs[ch];
      out.push({channel: ch, offset: s.pos ? s.pos.offset : null, epoch: s.pos ? s.pos.epoch : null, live: s.live, server: s.server});
    }
    return out;
  };

  Client.prototype._sendSubscribe = function (ws, s) {
    var id = ++this._nextId;
    s.reqId = id;
    s.live = false;
    s.early = [];
    this._pending[id] = {op: 'subscribe', channel: s.channel, gen: this._gen, id: id};
    var msg = {id: id, op: 'subscribe', channel: s.channel};
    if (s.pos) msg.since = {offset: s.pos.offset, epoch: s.pos.epoch};
    else if (s.latest) msg.latest = true; // with a position the server recovers from it instead
    s.latestDue = !!msg.latest;
    // A server-side subscription only restarts what the server holds
    // (not_subscribed when the backend ended it): no channel check, no
    // channel token.
    if (s.server) msg.server = true;
    if (s.server || typeof this.opts.getChannelToken !== 'function') {
      this._send(ws, msg);
      return;
    }
    // Private channels: a fresh channel token with every subscribe, the
    // resubscribes after a reconnect included (it is checked only then).
    var self = this, tok;
    try {
      tok = Promise.resolve(this.opts.getChannelToken(s.channel));
    } catch (e) {
      tok = Promise.reject(e);
    }
    tok.then(function (t) {
      if (self._ws !== ws || s.reqId !== id) return; // superseded meanwhile
      if (t) msg.token = String(t);
      self._send(ws, msg);
    }, function (err) {
      if (self._ws !== ws || s.reqId !== id) return;
      var p = self._pending[id];
      delete self._pending[id];
      if (p) self._onSubscribeReply(ws, p, {error: {code: 'channel_token', message: 'getting the channel token: ' + (err && err.message)}});
    });
  };

  Client.prototype._onSubscribeReply = function (ws, p, m) {
    var s = this._subs[p.channel];
    if (!s || s.reqId !== p.id) return; // unsubscribed meanwhile, or superseded
    s.reqId = 0;
    var early = s.early;
    s.early = [];
    if (m.error && m.error.code === 'not_subscribed' && s.server) {
      this._onServerUnsubscribed(s.channel); // the backend ended it while we were away
      return;
    }
    if (m.error || !m.result) {
      var err = m.error ? wsdError(m.error.code, 'wsd: ' + m.error.code + ': ' + m.error.message, {server: true, channel: s.channel})
        : wsdError('bad_reply', 'wsd: subscribe reply without a result');
      if (s.done) this._emit('error', err);
      this._dropSub(s, err);
      return;
    }
    var r = m.result;
    var res = {epoch: String(r.epoch), offset: Number(r.offset) || 0, recovered: false};
    s.live = true;
    if (!s.pos) {
      s.pos = {offset: res.offset, epoch: res.epoch};
    } else {
      res.recovered = !!r.recovered && res.epoch === s.pos.epoch && res.offset >= s.pos.offset;
      if (!res.recovered) s.pos = {offset: res.offset, epoch: res.epoch};
      this._emit('recover', {channel: s.channel, recovered: res.recovered, epoch: res.epoch, offset: res.offset});
    }
    if (!s.done) { s.done = true; s.resolve(res); }
    // Publications that overtook the answer (a server may replay before
    // answering) count only where they continue the sequence: the others
    // are older than the answer's position or will be replayed after it.
    for (var i = 0; i < early.length && this._subs[s.channel] === s; i++) {
      var e = early[i];
      if (String(e.epoch) !== s.pos.epoch) continue;
      if (Number(e.offset) === s.pos.offset + 1 || (e.latest && s.latestDue && Number(e.offset) === s.pos.offset)) this._deliver(s, e);
    }
  };

  Client.prototype._deliver = function (s, m) {
    var off = Number(m.offset), epoch = String(m.epoch);
    s.pos = {offset: off, epoch: epoch};
    s.resyncs = 0;
    s.latestDue = false;
    var pub = {channel: m.channel, offset: off, epoch: epoch, data: m.data};
    if (m.binary) pub.binary = true;
    if (m.latest) pub.latest = true; // the newest before the subscribe, asked with {latest: true}
    var hs = s.handlers.slice();
    for (var i = 0; i < hs.length; i++) {
      try { hs[i].call(this, pub); } catch (e) { report(e); }
    }
    this._emit('publication', pub);
  };

  Client.prototype._onPublication = function (ws, m) {
    var s = this._subs[m.channel];
    if (!s) return;
    if (!s.live) {
      if (s.reqId && s.early.length < 4096) s.early.push(m);
      return;
    }
    var off = Number(m.offset), epoch = String(m.epoch), deliver = false;
    if (epoch === s.pos.epoch && off > s.pos.offset + 1) {
      skipOwn(s); // maybe no gap: our own skip-self publications
      if (off > s.pos.offset + 1 && s.selfPending > 0 && s.stash.length < 4096) {
        if (!s.stash.length) s.stashGen = this._gen;
        s.stash.push(m); // until the publish replies say where theirs went
        return;
      }
    }
    if (epoch !== s.pos.epoch) { // the history was reset under a live subscription
      this._emit('recover', {channel: s.channel, recovered: false, epoch: epoch, offset: off});
      s.skipped = [];
      deliver = true;
    } else if (m.latest && s.latestDue && off === s.pos.offset) {
      // The latest publication sits at the answer's offset, which the
      // answer made the position: delivered once, not taken as a repeat.
      deliver = true;
    } else if (off <= s.pos.offset) {
      return; // already delivered
    } else if (off === s.pos.offset + 1) {
      deliver = true;
    } else if (s.resyncs === 0) { // a gap: ask the server to fill it
      s.resyncs++;
      if (!s.server) { // a server-side one restarts in place (an unsubscribe would end it)
        var id = ++this._nextId;
        this._pending[id] = {op: 'unsubscribe', channel: s.channel, gen: this._gen};
        this._send(ws, {id: id, op: 'unsubscribe', channel: s.channel});
      }
      this._sendSubscribe(ws, s);
      return;
    } else { // the server could not fill it
      this._emit('recover', {channel: s.channel, recovered: false, epoch: epoch, offset: off});
      deliver = true;
    }
    if (deliver) this._deliver(s, m);
  };

  // ---- requests ----

  // publish(channel, data, {skipSelf, idempotencyKey}?) resolves with
  // {offset, epoch}. It is made exactly once: it carries an idempotency
  // key (idempotencyKey, or a random one) and, when the connection drops
  // before the reply, goes again with the same key on the next connection
  // (for up to 100 s after its first send). Made while disconnected, it
  // waits for the next connection in a queue of at most
  // maxQueuedPublishes ('queue_full' past it; 'not_connected' with
  // failFast). The whole is bounded by publishTimeout ('timeout': it may
  // or may not have been made). skipSelf: this connection does not get
  // the publication back (the user's other tabs and everyone else do).
  Client.prototype.publish = function (channel, data, options) {
    options = options || {};
    var extra = {idempotency_key: options.idempotencyKey ? String(options.idempotencyKey) : newKey()};
    if (options.binary) extra.binary = true; // publishBinary's: data is a Uint8Array
    var hook;
    if (options.skipSelf) {
      extra.skip_self = true;
      var s = this._subs[channel], self = this;
      if (s) {
        s.selfPending++;
        hook = function (r) { self._selfPublished(s, r); };
      }
    }
    return this._request('publish', channel, data === undefined ? null : data, false, undefined, extra, hook);
  };

  // publishBinary(channel, bytes, {skipSelf, idempotencyKey}?) publishes
  // raw bytes (an ArrayBuffer, a typed array or a DataView, at least one
  // byte; copied at the call) in one binary frame, and resolves with
  // {offset, epoch}. Exactly once, queued while offline, resent after a
  // drop and bounded by publishTimeout, like publish(). Subscribers get
  // it as {data: ArrayBuffer, binary: true}.
  Client.prototype.publishBinary = function (channel, bytes, options) {
    options = options || {};
    var data = toBytes(bytes);
    if (!data) return Promise.reject(wsdError('bad_request', 'wsd: publishBinary takes an ArrayBuffer or a typed array'));
    if (!data.length) return Promise.reject(wsdError('bad_request', 'wsd: a binary publication needs at least one byte'));
    if (!binaryFrame(String(channel), {id: 0, idempotency_key: 'x', skip_self: true}, new Uint8Array(0))) {
      return Promise.reject(wsdError('bad_channel', 'wsd: a channel name of 1 to 255 bytes is needed for a binary publish'));
    }
    return this.publish(channel, data, {skipSelf: options.skipSelf, idempotencyKey: options.idempotencyKey, binary: true});
  };

  // _selfPublished takes a skip-self publish's outcome (r null: failed):
  // its offset is one this connection never gets, so the position moves
  // over it, and the pushes held behind it are handled again.
  Client.prototype._selfPublished = function (s, r) {
    s.selfPending--;
    if (this._subs[s.channel] !== s) return;
    if (r && s.pos && String(r.epoch) === s.pos.epoch && Number(r.offset) > s.pos.offset) {
      s.skipped.push(Number(r.offset));
      skipOwn(s);
    }
    var stash = s.stash, ws = this._ws;
    s.stash = [];
    if (!ws || this.state !== 'connected' || !s.live || s.stashGen !== this._gen) return;
    for (var i = 0; i < stash.length; i++) this._onPublication(ws, stash[i]);
  };

  // presence(channel) resolves with the server's answer (who is subscribed).
  Client.prototype.presence = function (channel) {
    return this._request('presence', channel);
  };

  // presenceStats(channel) resolves with {channel, count, connections}:
  // presence counted, not listed (cheap on big channels).
  Client.prototype.presenceStats = function (channel) {
    return this._request('presence_stats', channel);
  };

  // history(channel, {limit, since: {offset, epoch}}?) resolves with
  // {publications: [{offset, data}], offset, epoch} (a binary
  // publication: {offset, data: ArrayBuffer, binary: true}): the kept
  // publications, oldest first (the newest limit, or with since the oldest
  // limit after it), and the channel's latest position, from which a
  // subscribe with since goes on without a gap. No subscription needed.
  Client.prototype.history = function (channel, options) {
    var extra = {};
    if (options && options.limit !== undefined && options.limit !== null) extra.limit = Number(options.limit);
    if (options && options.since) extra.since = {offset: Number(options.since.offset), epoch: String(options.since.epoch)};
    return this._request('history', channel, undefined, false, undefined, extra).then(function (r) {
      var ps = r && r.publications;
      for (var i = 0; ps && i < ps.length; i++) {
        if (typeof ps[i].data_b64 !== 'string') continue;
        ps[i] = {offset: ps[i].offset, data: fromBase64(ps[i].data_b64), binary: true};
      }
      return r;
    });
  };

  // rpc(method, data) calls the application's backend through the server
  // (its rpc proxy) and resolves with the backend's result. A refusal by
  // the backend rejects with its code (err.code, err.server = true); a
  // slow or unreachable backend with 'backend_unavailable'. Like publish,
  // a 'connection_lost' rejection means the call may or may not have
  // reached the backend.
  Client.prototype.rpc = function (method, data) {
    return this._request('rpc', undefined, data, false, method);
  };

  // _request sends a request (or queues it until a connection) and
  // settles with its reply. extra: more fields of the message; hook(result
  // or null): called once, at once, when it settles.
  Client.prototype._request = function (op, channel, data, noWait, method, extra, hook) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var settled = false;
      var settle = function (fn, v, r) {
        if (settled) return;
        settled = true;
        if (hook) hook(r);
        fn(v);
      };
      var req = {op: op, channel: channel, data: data, method: method, extra: extra,
        resolve: function (v) { settle(resolve, v, v || {}); },
        reject: function (e) { settle(reject, e, null); }};
      if (self._closed) return req.reject(wsdError('closed', 'wsd: client closed'));
      if (self._ws && self.state === 'connected') {
        self._sendRequest(self._ws, req);
      } else if (self.opts.failFast || noWait) {
        return req.reject(wsdError('not_connected', 'wsd: not connected'));
      } else if (op === 'publish' && self._queuedPublishes() >= self.opts.maxQueuedPublishes) {
        return req.reject(wsdError('queue_full', 'wsd: ' + self.opts.maxQueuedPublishes + ' publishes already wait for a connection'));
      } else {
        self._queue.push(req);
      }
      req.timer = setTimeout(function () {
        var i = self._queue.indexOf(req);
        if (i >= 0) self._queue.splice(i, 1);
        if (req.id) delete self._pending[req.id];
        req.reject(wsdError('timeout', 'wsd: ' + op + ' timed out'));
      }, op === 'publish' ? self.opts.publishTimeout : self.opts.requestTimeout);
    });
  };

  Client.prototype._queuedPublishes = function () {
    var n = 0;
    for (var i = 0; i < this._queue.length; i++) if (this._queue[i].op === 'publish') n++;
    return n;
  };

  Client.prototype._sendRequest = function (ws, req) {
    req.id = ++this._nextId;
    req.gen = this._gen;
    if (!req.sentAt) req.sentAt = now(); // the first send starts the resend window
    this._pending[req.id] = req;
    var msg = {id: req.id, op: req.op};
    if (req.channel !== undefined) msg.channel = req.channel;
    if (req.method !== undefined) msg.method = req.method;
    if (req.data !== undefined) msg.data = req.data;
    if (req.token !== undefined) msg.token = req.token;
    if (req.extra) for (var k in req.extra) msg[k] = req.extra[k];
    if (msg.binary) {
      var head = {id: msg.id, idempotency_key: msg.idempotency_key};
      if (msg.skip_self) head.skip_self = true;
      try { ws.send(binaryFrame(String(msg.channel), head, msg.data)); } catch (e) { /* the close event follows */ }
      return;
    }
    this._send(ws, msg);
  };

  // ---- tokens ----

  // _token resolves with the token for the next attempt: getToken's, else
  // the token option (a value or a function).
  Client.prototype._token = function () {
    var tok = this.opts.getToken || this.opts.token;
    try {
      return Promise.resolve(typeof tok === 'function' ? tok() : tok);
    } catch (e) {
      return Promise.reject(e);
    }
  };

  // _refresh answers a refresh notice on ws with a token from getToken (or
  // a token function). A failure is an 'error' event: the server closes at
  // exp with 3000 and the reconnect brings a fresh token.
  Client.prototype._refresh = function (ws) {
    var self = this;
    if (typeof (this.opts.getToken || this.opts.token) !== 'function') return; // nothing fresher to send
    this._token().then(function (token) {
      if (self._ws !== ws || self.state !== 'connected') return; // a new connection had a fresh token
      return new Promise(function (resolve, reject) {
        var req = {op: 'refresh', token: String(token), resolve: resolve, reject: reject};
        req.timer = setTimeout(function () {
          if (req.id) delete self._pending[req.id];
          reject(wsdError('timeout', 'wsd: refresh timed out'));
        }, self.opts.requestTimeout);
        self._sendRequest(ws, req);
      }).then(function (r) { self._emit('refresh', {exp: r && r.exp}); });
    }).catch(function (err) {
      self._emit('error', wsdError(err && err.code || 'refresh_failed', 'wsd: refreshing the token: ' + (err && err.message), {refresh: true}));
    });
  };

  var WSD = {Client: Client, version: '1'};
  global.WSD = WSD;
  if (typeof module === 'object' && module && module.exports) module.exports = WSD;
})(typeof window !== 'undefined' ? window : globalThis);
