#!/usr/bin/env python3
"""Usage: client.py URL CHECK

Runs one interop check against wsd's /echo with the `websockets` library
(Debian: python3-websockets) and exits 0 when it passed. On failure it prints
"FAIL: <reason>" on stderr and exits 1. test/interop/python_test.go runs every
CHECK. Works with websockets 10.x (Debian 12) and the newer asyncio
implementation (13+).
"""

import asyncio
import random
import sys
import time

import websockets

BIG = 1 << 20
TEXT = "hello, wsd \u2713 \u2014 \u00fcn\u00efc\u00f6d\u00e9 \U0001F600"
IO_TIMEOUT = 15
CLOSE_TIMEOUT = 5


class Failure(Exception):
    pass


def connect(url, compression=None):
    return websockets.connect(
        url,
        compression=compression,
        max_size=16 * BIG,
        open_timeout=5,
        close_timeout=CLOSE_TIMEOUT,
        ping_interval=None,
    )


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def compressible_text(n):
    parts, size, i = [], 0, 0
    while size < n:
        line = '{"channel":"prices","offset":%d,"data":{"sym":"WSD","bid":%d.25}}\n' % (i, 100 + i % 7)
        parts.append(line)
        size += len(line)
        i += 1
    return "".join(parts)


def multibyte_text(n):
    unit = "wsd\u2192\u00fc\U0001F600\u20ac "
    return unit * (n // len(unit.encode()) + 1)


def binary512():
    return bytes(i & 0xFF for i in range(512))


def describe(got):
    return "%s of %d" % (type(got).__name__, len(got))


async def echo(ws, msg):
    await asyncio.wait_for(ws.send(msg), IO_TIMEOUT)
    await expect(ws, msg)


async def expect(ws, msg):
    got = await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
    if type(got) is not type(msg):
        raise Failure("echo is %s, sent %s" % (describe(got), describe(msg)))
    if got != msg:
        i = next((i for i, (a, b) in enumerate(zip(got, msg)) if a != b), min(len(got), len(msg)))
        raise Failure("echo differs: got %s, want %s; first difference at index %d" % (describe(got), describe(msg), i))


async def fragmented(ws, parts):
    """Sends one message as len(parts) frames: websockets fragments an iterable."""
    await asyncio.wait_for(ws.send(parts), IO_TIMEOUT)
    await expect(ws, parts[0][:0].join(parts))


def negotiated_extensions(ws):
    exts = getattr(ws, "extensions", None)
    if exts is None:  # websockets >= 13 asyncio implementation
        exts = ws.protocol.extensions
    return [e.name for e in exts]


def response_header(ws, name):
    headers = getattr(ws, "response_headers", None)
    if headers is None:
        headers = ws.response.headers
    return headers.get(name, "")


def require_deflate(ws):
    names = negotiated_extensions(ws)
    header = response_header(ws, "Sec-WebSocket-Extensions")
    if "permessage-deflate" not in names:
        raise Failure(
            "permessage-deflate not negotiated (offered; --deflate defaults to true): extensions=%r, Sec-WebSocket-Extensions: %r"
            % (names, header)
        )
    print("negotiated:", header)


async def check_text(url):
    async with connect(url) as ws:
        await echo(ws, TEXT)
        await echo(ws, "")


async def check_binary(url):
    async with connect(url) as ws:
        await echo(ws, binary512())
        await echo(ws, random_bytes(65536, 1))


async def check_big(url):
    async with connect(url) as ws:
        await echo(ws, random_bytes(BIG, 2))
        await echo(ws, multibyte_text(BIG))


async def check_fragmented(url):
    async with connect(url) as ws:
        text = multibyte_text(6000)
        # str fragments are encoded one by one, so runes are not split here;
        # binary fragments are split at arbitrary offsets.
        await fragmented(ws, [text[:1], text[1:700], text[700:1033], text[1033:3000], text[3000:]])
        data = random_bytes(9000, 3)
        await fragmented(ws, [data[:1000], data[1000:1001], data[1001:5000], data[5000:]])


async def check_compressed(url):
    async with connect(url, compression="deflate") as ws:
        require_deflate(ws)
        await echo(ws, "short")
        await echo(ws, compressible_text(64 << 10))
        await echo(ws, compressible_text(64 << 10))
        await echo(ws, compressible_text(BIG).encode())
        await echo(ws, random_bytes(100000, 4))
        text = compressible_text(40000) + multibyte_text(20000)
        await fragmented(ws, [text[:5000], text[5000:5001], text[5001:20000], text[20000:]])


async def check_close(url):
    async with connect(url) as ws:
        await echo(ws, "before close")
        start = time.monotonic()
        # close() sends 1000 "bye", waits for the server's close frame, then
        # waits up to close_timeout for the server to close TCP.
        await ws.close(1000, "bye")
        elapsed = time.monotonic() - start
        if ws.close_code != 1000:
            raise Failure(
                "server answered close 1000 'bye' with code %r %r (1006: no close frame)" % (ws.close_code, ws.close_reason)
            )
        if elapsed >= CLOSE_TIMEOUT - 0.5:
            raise Failure(
                "close handshake took %.1fs: the server did not close TCP after answering the close frame" % elapsed
            )


CHECKS = {
    "text": check_text,
    "binary": check_binary,
    "big": check_big,
    "fragmented": check_fragmented,
    "compressed": check_compressed,
    "close": check_close,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CHECKS:
        print("usage: client.py URL (%s)" % "|".join(CHECKS), file=sys.stderr)
        return 2
    url, check = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(CHECKS[check](url))
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    except Exception as e:  # library errors: ConnectionClosed, InvalidStatus, timeouts
        print("FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
