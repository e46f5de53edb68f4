#!/usr/bin/python3
"""lhyper's WebSocket conformance client.

The case categories of the Autobahn|Testsuite (its `fuzzingclient` against
a server), rebuilt for this project from their published descriptions: 1
framing, 2 pings and pongs, 3 reserved bits, 4 opcodes, 5 fragmentation, 6
UTF-8 (fail-fast included), 7 close handling, 9 limits and performance, 10
auto-fragmentation, 12 and 13 permessage-deflate. It speaks raw frames over
a socket to an echo endpoint (every data message sent back as received) and
judges each case as Autobahn does:

  OK          the server did what the RFC asks, closing cleanly (close frames
              exchanged, then the server closes TCP), or failing the
              connection with the expected close code
  NON-STRICT  conformant, but not the SHOULD behaviour (e.g. failing a bad
              UTF-8 message only after its last frame instead of at once)
  FAILED      anything else

Usage: wsconf.py --port N [--path /ws/echo] [--full] [--list] [CASE-PREFIX...]
Prints one line per case: "<id> <verdict>[: detail]" and, last,
"summary: N OK, N NON-STRICT, N FAILED". --full runs categories 9, 12 and
13 at Autobahn's sizes and counts (16 MiB messages, 1000 messages a case);
without it they run smaller.
"""

import argparse
import base64
import hashlib
import os
import random
import socket
import struct
import sys
import time
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0
TIMEOUT = 10.0


class Failed(Exception):
    pass


class NonStrict(Exception):
    pass


def mask_bytes(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame_bytes(op, payload=b"", fin=True, rsv=0, mask=True, key=None):
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (op & 0x0F)
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def parse_params(ext):
    """the permessage-deflate parameters of a response value"""
    parts = [p.strip() for p in ext.split(";")]
    if parts[0].lower() != "permessage-deflate":
        raise Failed("server answered an extension not offered: " + ext)
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip().strip('"') if v else True
    return out


class Peer:
    """one connection to the echo endpoint, as a WebSocket client"""

    def __init__(self, port, path, offer=None, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.sent_close = False
        key = base64.b64encode(os.urandom(16))
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() +
               b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               b"\r\nSec-WebSocket-Version: 13\r\n")
        if offer:
            req += b"Sec-WebSocket-Extensions: " + offer.encode() + b"\r\n"
        self.sock.sendall(req + b"\r\n")
        while b"\r\n\r\n" not in self.buf:
            if not self.fill(timeout):
                raise Failed("no handshake response")
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise Failed("handshake answered: " + lines[0])
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields.setdefault(k.strip().lower(), []).append(v.strip())
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if fields.get("sec-websocket-accept") != [want]:
            raise Failed("wrong Sec-WebSocket-Accept")
        self.deflate = None
        exts = fields.get("sec-websocket-extensions")
        if exts:
            if not offer:
                raise Failed("extension in the response, none offered")
            self.deflate = parse_params(", ".join(exts))
        self.inflater = None
        self.compressor = None

    # --- bytes ---

    def fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = "reset"
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def write(self, data, chop=None, delay=0.0):
        try:
            if not chop:
                self.sock.sendall(data)
                return
            for i in range(0, len(data), chop):
                self.sock.sendall(data[i:i + chop])
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = "reset"

    def send(self, op, payload=b"", fin=True, rsv=0, chop=None, delay=0.0):
        if isinstance(payload, str):
            payload = payload.encode()
        self.write(frame_bytes(op, payload, fin, rsv), chop, delay)

    # --- frames and messages from the server ---

    def read_frame(self, timeout):
        """(fin, rsv, op, payload), or None at EOF or timeout (self.eof tells)"""
        deadline = time.monotonic() + timeout
        while True:
            b = self.buf
            if len(b) >= 2:
                n = b[1] & 0x7F
                need = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                if b[1] & 0x80:
                    raise Failed("the server sent a masked frame")
                if len(b) >= need:
                    if n == 126:
                        n = struct.unpack("!H", b[2:4])[0]
                    elif n == 127:
                        n = struct.unpack("!Q", b[2:10])[0]
                    if len(b) >= need + n:
                        payload = bytes(b[need:need + n])
                        fin, rsv, op = b[0] >> 7, (b[0] >> 4) & 7, b[0] & 0x0F
                        del b[:need + n]
                        return fin, rsv, op, payload
            left = deadline - time.monotonic()
            if left <= 0 or self.eof or not self.fill(left):
                return None

    def event(self, timeout=TIMEOUT):
        """the next thing from the server: ("msg", op, data), ("ping", data),
        ("pong", data), ("close", code, reason), ("eof",) or ("timeout",)"""
        parts, first_op, compressed = [], None, False
        while True:
            f = self.read_frame(timeout)
            if f is None:
                if self.eof:
                    return ("eof",)
                return ("timeout",)
            fin, rsv, op, payload = f
            if op >= 8:
                if not fin or len(payload) > 125 or rsv:
                    raise Failed("bad control frame from the server")
                if op == CLOSE:
                    if len(payload) == 0:
                        return ("close", 1005, "")
                    if len(payload) == 1:
                        raise Failed("close frame of 1 byte from the server")
                    return ("close", struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8"))
                if op == PING:
                    # a client answers pings (keepalive), whatever the case
                    self.send(PONG, payload)
                    continue
                if op == PONG:
                    return ("pong", payload)
                raise Failed("reserved control opcode from the server")
            if op not in (TEXT, BINARY, CONT):
                raise Failed("reserved opcode from the server")
            if first_op is None:
                if op == CONT:
                    raise Failed("continuation with nothing to continue, from the server")
                first_op = op
                compressed = bool(rsv & 4)
                if rsv & ~4 or (compressed and self.deflate is None):
                    raise Failed("reserved bits from the server")
            else:
                if op != CONT:
                    raise Failed("new message inside a fragmented one, from the server")
                if rsv:
                    raise Failed("reserved bits on a continuation, from the server")
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if compressed:
                    data = self.inflate(data)
                if first_op == TEXT:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise Failed("the server sent invalid UTF-8 text")
                return ("msg", first_op, data)

    def inflate(self, data):
        if self.inflater is None or "server_no_context_takeover" in self.deflate:
            self.inflater = zlib.decompressobj(-15)
        return self.inflater.decompress(data + b"\x00\x00\xff\xff")

    def compress(self, data):
        if self.compressor is None or "client_no_context_takeover" in self.deflate:
            bits = int(self.deflate.get("client_max_window_bits", 15)) if self.deflate.get(
                "client_max_window_bits") not in (None, True) else 15
            self.compressor = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
        out = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(b"\x00\x00\xff\xff"):
            out = out[:-4]
        return out

    # --- expectations ---

    def expect(self, *want, timeout=TIMEOUT):
        """the server's next events are exactly want (messages, pongs)"""
        for w in want:
            got = self.event(timeout)
            if got != w:
                raise Failed("expected %s, got %s" % (short(w), short(got)))

    def expect_echo(self, op, data, timeout=TIMEOUT):
        if isinstance(data, str):
            data = data.encode()
        self.expect(("msg", op, data), timeout=timeout)

    def finish(self, code=1000, reason=b""):
        """our closing handshake: the server echoes the close, then closes TCP"""
        self.send(CLOSE, struct.pack("!H", code) + reason if code else b"")
        self.sent_close = True
        got = self.event()
        if got[0] != "close":
            raise Failed("expected the close echo, got " + short(got))
        if code and got[1] != code:
            raise Failed("close echoed with %d, sent %d" % (got[1], code))
        self.expect_drop()

    def expect_drop(self, timeout=TIMEOUT):
        """the server closes TCP (its duty, RFC 6455 7.1.1)"""
        got = self.event(timeout)
        if got[0] == "timeout":
            raise Failed("the server did not close the TCP connection")
        if got[0] != "eof":
            raise Failed("after the close, got " + short(got))

    def expect_failure(self, codes, timeout=TIMEOUT):
        """the server fails the connection: a close frame with one of codes
        (nothing else before it), then it drops TCP"""
        got = self.event(timeout)
        if got[0] == "timeout":
            raise Failed("the server did not fail the connection")
        if got[0] == "eof":
            raise Failed("the server dropped TCP without a close frame")
        if got[0] != "close":
            raise Failed("expected a close (%s), got %s" % ("/".join(map(str, codes)), short(got)))
        if got[1] not in codes:
            raise Failed("close code %d, expected %s" % (got[1], "/".join(map(str, codes))))
        if not self.sent_close:
            self.send(CLOSE, struct.pack("!H", got[1]))
        self.expect_drop()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def short(ev):
    out = []
    for x in ev:
        if isinstance(x, (bytes, bytearray)):
            out.append("%d bytes %r" % (len(x), bytes(x[:24])))
        else:
            out.append(repr(x))
    return "(" + ", ".join(out) + ")"


# --- the cases ---

CASES = []


def case(cid, desc, offer=None, long=False):
    def reg(fn):
        CASES.append((cid, desc, fn, offer, long))
        return fn
    return reg


def echo_case(cid, desc, op, payload, chop=None):
    @case(cid, desc)
    def run(p):
        p.send(op, payload, chop=chop)
        p.expect_echo(op, payload)
        p.finish()


def fail_case(cid, desc, frames, codes=(1002,), before=(), chop=None, delay=0.0):
    """frames: (op, payload, fin, rsv) sent in order; before: events the
    server owes first (echoes of what came before the violation)"""
    @case(cid, desc)
    def run(p):
        data = b"".join(frame_bytes(op, pl.encode() if isinstance(pl, str) else pl, fin, rsv)
                        for op, pl, fin, rsv in frames)
        if chop == "frame":
            for op, pl, fin, rsv in frames:
                p.send(op, pl, fin, rsv)
                time.sleep(delay or 0.01)
        else:
            p.write(data, chop, delay)
        if before:
            p.expect(*before)
        p.expect_failure(codes)


def category1():
    for i, n in enumerate([0, 125, 126, 127, 128, 65535, 65536]):
        echo_case("1.1.%d" % (i + 1), "text message of %d bytes" % n, TEXT, "*" * n)
        echo_case("1.2.%d" % (i + 1), "binary message of %d bytes" % n, BINARY, b"\xfe" * n)
    echo_case("1.1.8", "text message of 65536 bytes in chops of 997", TEXT, "*" * 65536, chop=997)
    echo_case("1.2.8", "binary message of 65536 bytes in chops of 997", BINARY, b"\xfe" * 65536, chop=997)


def category2():
    def pong_case(cid, desc, payload, chop=None):
        @case(cid, desc)
        def run(p):
            p.send(PING, payload, chop=chop, delay=0.002 if chop else 0)
            p.expect(("pong", payload))
            p.finish()

    pong_case("2.1", "ping without payload", b"")
    pong_case("2.2", "ping with a small text payload", b"Hello, world!")
    pong_case("2.3", "ping with a small binary payload", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")
    pong_case("2.4", "ping with 125 bytes", b"\xfe" * 125)
    fail_case("2.5", "ping with 126 bytes", [(PING, b"\xfe" * 126, True, 0)])
    pong_case("2.6", "ping with 125 bytes, sent byte by byte", b"\xfe" * 125, chop=1)

    @case("2.7", "unsolicited pong without payload: nothing in return")
    def c27(p):
        p.send(PONG)
        p.finish()

    @case("2.8", "unsolicited pong with payload: nothing in return")
    def c28(p):
        p.send(PONG, b"unsolicited pong payload")
        p.finish()

    @case("2.9", "unsolicited pong, then a ping: one pong, for the ping")
    def c29(p):
        p.send(PONG, b"unsolicited pong payload")
        p.send(PING, b"ping payload")
        p.expect(("pong", b"ping payload"))
        p.finish()

    @case("2.10", "10 pings: 10 pongs, in order")
    def c210(p):
        for i in range(10):
            p.send(PING, b"payload-%d" % i)
        p.expect(*[("pong", b"payload-%d" % i) for i in range(10)])
        p.finish()

    @case("2.11", "10 pings sent byte by byte: 10 pongs, in order")
    def c211(p):
        for i in range(10):
            p.send(PING, b"payload-%d" % i, chop=1, delay=0.001)
        p.expect(*[("pong", b"payload-%d" % i) for i in range(10)])
        p.finish()


def category3():
    fail_case("3.1", "text message with RSV = 1", [(TEXT, "Hello, world!", True, 4)])
    hello = ("msg", TEXT, b"Hello, world!")
    fail_case("3.2", "text, then text with RSV = 2, then a ping: echo, then fail",
              [(TEXT, "Hello, world!", True, 0), (TEXT, "Hello, world!", True, 2), (PING, b"", True, 0)],
              before=[hello])
    fail_case("3.3", "as 3.2 with RSV = 3, sent frame by frame",
              [(TEXT, "Hello, world!", True, 0), (TEXT, "Hello, world!", True, 3), (PING, b"", True, 0)],
              before=[hello], chop="frame")
    fail_case("3.4", "as 3.2 with RSV = 4, sent byte by byte",
              [(TEXT, "Hello, world!", True, 0), (TEXT, "Hello, world!", True, 4), (PING, b"", True, 0)],
              before=[hello], chop=1, delay=0.001)
    fail_case("3.5", "binary message with RSV = 5", [(BINARY, b"\x00\xff\xfe\xfd", True, 5)])
    fail_case("3.6", "ping with RSV = 6", [(PING, b"Hello, world!", True, 6)])
    fail_case("3.7", "close with RSV = 7", [(CLOSE, b"", True, 7)])


def category4():
    hello = ("msg", TEXT, b"Hello, world!")
    for i, op in enumerate([3, 4, 5, 6, 7]):
        base = "4.1" if op < 8 else "4.2"
        cid = "%s.%d" % (base, i + 1)
        if i < 2:
            fail_case(cid, "frame with reserved opcode %d%s" % (op, " and a payload" if i else ""),
                      [(op, b"reserved" if i else b"", True, 0)])
        else:
            fail_case(cid, "text, then reserved opcode %d, then a ping: echo, then fail" % op,
                      [(TEXT, "Hello, world!", True, 0), (op, b"reserved" if i > 2 else b"", True, 0),
                       (PING, b"", True, 0)], before=[hello])
    for i, op in enumerate([11, 12, 13, 14, 15]):
        cid = "4.2.%d" % (i + 1)
        if i < 2:
            fail_case(cid, "frame with reserved control opcode %d%s" % (op, " and a payload" if i else ""),
                      [(op, b"reserved" if i else b"", True, 0)])
        else:
            fail_case(cid, "text, then reserved control opcode %d, then a ping: echo, then fail" % op,
                      [(TEXT, "Hello, world!", True, 0), (op, b"reserved" if i > 2 else b"", True, 0),
                       (PING, b"", True, 0)], before=[hello])


def category5():
    fail_case("5.1", "ping in 2 fragments", [(PING, b"fragment1", False, 0), (CONT, b"fragment2", True, 0)])
    fail_case("5.2", "pong in 2 fragments", [(PONG, b"fragment1", False, 0), (CONT, b"fragment2", True, 0)])

    def frag_case(cid, desc, chop, ping):
        @case(cid, desc)
        def run(p):
            frames = [(TEXT, b"fragment1", False), (CONT, b"fragment2", True)]
            if ping:
                frames.insert(1, (PING, b"ping payload", True))
            data = [frame_bytes(op, pl, fin) for op, pl, fin in frames]
            if chop == "frame":
                for d in data:
                    p.write(d)
                    time.sleep(0.01)
            else:
                p.write(b"".join(data), chop, 0.001 if chop else 0)
            if ping:
                p.expect(("pong", b"ping payload"))
            p.expect_echo(TEXT, b"fragment1fragment2")
            p.finish()

    frag_case("5.3", "text in 2 fragments", None, False)
    frag_case("5.4", "text in 2 fragments, sent frame by frame", "frame", False)
    frag_case("5.5", "text in 2 fragments, sent byte by byte", 1, False)
    frag_case("5.6", "text in 2 fragments, a ping in between", None, True)
    frag_case("5.7", "as 5.6, sent frame by frame", "frame", True)
    frag_case("5.8", "as 5.6, sent byte by byte", 1, True)
    for i, chop in enumerate([None, "frame", 1]):
        how = ["in one write", "frame by frame", "byte by byte"][i]
        fail_case("5.%d" % (9 + i), "continuation (FIN) with nothing to continue, then text, " + how,
                  [(CONT, b"fragment2", True, 0), (TEXT, b"fragment1", False, 0), (CONT, b"fragment2", True, 0)],
                  chop=chop, delay=0.001 if chop == 1 else 0)
        fail_case("5.%d" % (12 + i), "continuation (no FIN) with nothing to continue, then text, " + how,
                  [(CONT, b"fragment2", False, 0), (TEXT, b"fragment1", False, 0), (CONT, b"fragment2", True, 0)],
                  chop=chop, delay=0.001 if chop == 1 else 0)
    fail_case("5.15", "text in 2 fragments, then a continuation with nothing to continue, then text",
              [(TEXT, b"fragment1", False, 0), (CONT, b"fragment2", True, 0), (CONT, b"fragment3", False, 0),
               (TEXT, b"fragment4", True, 0)], before=[("msg", TEXT, b"fragment1fragment2")])
    fail_case("5.16", "continuation (no FIN), then text in 2 fragments, twice",
              [(CONT, b"fragment1", False, 0), (TEXT, b"fragment2", False, 0), (CONT, b"fragment3", True, 0)] * 2)
    fail_case("5.17", "continuation (FIN), then text in 2 fragments, twice",
              [(CONT, b"fragment1", True, 0), (TEXT, b"fragment2", False, 0), (CONT, b"fragment3", True, 0)] * 2)
    fail_case("5.18", "text in 2 fragments, both with the text opcode",
              [(TEXT, b"fragment1", False, 0), (TEXT, b"fragment2", True, 0)])

    def five_frags(cid, desc, delay):
        @case(cid, desc)
        def run(p):
            p.send(TEXT, b"fragment1", False)
            p.send(CONT, b"fragment2", False)
            p.send(PING, b"pongme 1!")
            p.expect(("pong", b"pongme 1!"))
            time.sleep(delay)
            p.send(CONT, b"fragment3", False)
            time.sleep(delay)
            p.send(CONT, b"fragment4", False)
            p.send(PING, b"pongme 2!")
            p.expect(("pong", b"pongme 2!"))
            time.sleep(delay)
            p.send(CONT, b"fragment5", True)
            p.expect_echo(TEXT, b"fragment1fragment2fragment3fragment4fragment5")
            p.finish()

    five_frags("5.19", "text in 5 fragments, 2 pings in between, answered at once", 0.1)
    five_frags("5.20", "as 5.19, with longer pauses", 0.3)


UTF8_VALID = [
    ("6.5.1", "cebae1bdb9cf83cebcceb5"), ("6.5.2", "f4808080"),
    ("6.7.1", "00"), ("6.7.2", "c280"), ("6.7.3", "e0a080"), ("6.7.4", "f0908080"),
    ("6.9.1", "7f"), ("6.9.2", "dfbf"), ("6.9.3", "efbfbf"), ("6.9.4", "f48fbfbf"),
    ("6.11.1", "ed9fbf"), ("6.11.2", "ee8080"), ("6.11.3", "efbfbd"), ("6.11.4", "f48fbfbf"),
    ("6.23.1", "efbfbd"), ("6.23.2", "efbbbf"), ("6.23.3", "efbfbeefbfbf"),
]
UTF8_INVALID = [
    ("6.8.1", "f888808080"), ("6.8.2", "fc8480808080"),
    ("6.10.1", "f7bfbfbf"), ("6.10.2", "fbbfbfbfbf"), ("6.10.3", "fdbfbfbfbfbf"),
    ("6.11.5", "f4908080"),
    ("6.12.1", "80"), ("6.12.2", "bf"), ("6.12.3", "80bf"), ("6.12.4", "80bf80"),
    ("6.12.5", "80bf80bf"), ("6.12.6", "80bf80bf80"), ("6.12.7", "80bf80bf80bf"),
    ("6.12.8", "".join("%02x" % b for b in range(0x80, 0xc0))),
    ("6.13.1", "".join("%02x20" % b for b in range(0xc0, 0xe0))),
    ("6.13.2", "".join("%02x20" % b for b in range(0xe0, 0xf0))),
    ("6.13.3", "".join("%02x20" % b for b in range(0xf0, 0xf8))),
    ("6.13.4", "".join("%02x20" % b for b in range(0xf8, 0xfc))),
    ("6.13.5", "fc20fd20"),
    ("6.14.1", "c0"), ("6.14.2", "e080"), ("6.14.3", "f08080"), ("6.14.4", "f8808080"),
    ("6.14.5", "fc80808080"), ("6.14.6", "df"), ("6.14.7", "efbf"), ("6.14.8", "f7bfbf"),
    ("6.14.9", "fbbfbfbf"), ("6.14.10", "fdbfbfbfbf"),
    ("6.15.1", "c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf"),
    ("6.16.1", "fe"), ("6.16.2", "ff"), ("6.16.3", "fefeffff"),
    ("6.17.1", "c0af"), ("6.17.2", "e080af"), ("6.17.3", "f08080af"), ("6.17.4", "f8808080af"),
    ("6.17.5", "fc80808080af"),
    ("6.18.1", "c1bf"), ("6.18.2", "e09fbf"), ("6.18.3", "f08fbfbf"), ("6.18.4", "f887bfbfbf"),
    ("6.18.5", "fc83bfbfbfbf"),
    ("6.19.1", "c080"), ("6.19.2", "e08080"), ("6.19.3", "f0808080"), ("6.19.4", "f880808080"),
    ("6.19.5", "fc8080808080"),
    ("6.20.1", "eda080"), ("6.20.2", "edadbf"), ("6.20.3", "edae80"), ("6.20.4", "edafbf"),
    ("6.20.5", "edb080"), ("6.20.6", "edbe80"), ("6.20.7", "edbfbf"),
    ("6.21.1", "eda080edb080"), ("6.21.2", "eda080edbfbf"), ("6.21.3", "edadbfedb080"),
    ("6.21.4", "edadbfedbfbf"), ("6.21.5", "edae80edb080"), ("6.21.6", "edae80edbfbf"),
    ("6.21.7", "edafbfedb080"), ("6.21.8", "edafbfedbfbf"),
]


def noncharacters():
    out = ["efbfbe", "efbfbf"]
    for plane in range(1, 17):
        for low in (0xFFFE, 0xFFFF):
            out.append(chr(plane << 16 | low).encode("utf-8").hex())
    return out


def category6():
    @case("6.1.1", "text message of length 0")
    def c611(p):
        p.send(TEXT, b"")
        p.expect_echo(TEXT, b"")
        p.finish()

    @case("6.1.2", "text message in 3 empty fragments")
    def c612(p):
        p.send(TEXT, b"", False)
        p.send(CONT, b"", False)
        p.send(CONT, b"", True)
        p.expect_echo(TEXT, b"")
        p.finish()

    @case("6.1.3", "text in 3 fragments, first and last empty")
    def c613(p):
        p.send(TEXT, b"", False)
        p.send(CONT, b"middle frame payload", False)
        p.send(CONT, b"", True)
        p.expect_echo(TEXT, b"middle frame payload")
        p.finish()

    text = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()

    @case("6.2.1", "valid UTF-8 text in one fragment")
    def c621(p):
        p.send(TEXT, text)
        p.expect_echo(TEXT, text)
        p.finish()

    @case("6.2.2", "valid UTF-8 text in 2 fragments, cut at a code point boundary")
    def c622(p):
        p.send(TEXT, text[:12], False)
        p.send(CONT, text[12:], True)
        p.expect_echo(TEXT, text)
        p.finish()

    def bytewise(cid, desc, data):
        @case(cid, desc)
        def run(p):
            for i, b in enumerate(data):
                p.send(TEXT if i == 0 else CONT, bytes([b]), i == len(data) - 1)
            p.expect_echo(TEXT, data)
            p.finish()

    bytewise("6.2.3", "valid UTF-8 text in 1-byte fragments (code points cut)", text)
    bytewise("6.2.4", "'\u03ba\u1f79\u03c3\u03bc\u03b5' in 1-byte fragments",
             bytes.fromhex("cebae1bdb9cf83cebcceb5"))
    bad = bytes.fromhex("cebae1bdb9cf83cebcceb5eda080656469746564")
    fail_case("6.3.1", "invalid UTF-8 text in one frame", [(TEXT, bad, True, 0)], codes=(1007,))

    @case("6.3.2", "invalid UTF-8 text in 1-byte fragments")
    def c632(p):
        for i, b in enumerate(bad):
            p.send(TEXT if i == 0 else CONT, bytes([b]), i == len(bad) - 1)
        p.expect_failure((1007,))

    def fail_fast(cid, desc, parts, chops):
        """frames (or chops of one frame): the connection must fail with the
        part that makes the text invalid, before the last part is sent"""
        @case(cid, desc)
        def run(p):
            if chops:
                data = frame_bytes(TEXT, b"".join(parts), True)
                head = len(data) - sum(len(x) for x in parts)
                pieces, at = [], 0
                for i, x in enumerate(parts):
                    end = at + len(x) + (head if i == 0 else 0)
                    pieces.append(data[at:end])
                    at = end
            else:
                pieces = [frame_bytes(TEXT if i == 0 else CONT, x, i == len(parts) - 1)
                          for i, x in enumerate(parts)]
            p.write(pieces[0])
            got = p.event(0.3)
            if got[0] != "timeout":
                raise Failed("after the valid first part, got " + short(got))
            p.write(pieces[1])
            got = p.event(3.0)
            if got[0] == "timeout":
                p.write(pieces[2])
                p.expect_failure((1007,))
                raise NonStrict("failed only after the last part (not fail-fast)")
            if got[0] != "close" or got[1] != 1007:
                raise Failed("expected close 1007 after the invalid part, got " + short(got))
            p.send(CLOSE, struct.pack("!H", 1007))
            p.sent_close = True
            p.expect_drop()

    p1 = [bytes.fromhex("cebae1bdb9cf83cebcceb5"), bytes.fromhex("f4908080"), bytes.fromhex("656469746564")]
    p2 = [bytes.fromhex("cebae1bdb9cf83cebcceb5f4"), bytes.fromhex("90"), bytes.fromhex("8080656469746564")]
    fail_fast("6.4.1", "invalid UTF-8 in the 2nd of 3 fragments: fail before the 3rd", p1, False)
    fail_fast("6.4.2", "as 6.4.1, the bad sequence cut across fragments", p2, False)
    fail_fast("6.4.3", "invalid UTF-8 in the 2nd of 3 chops of one frame: fail before the 3rd", p1, True)
    fail_fast("6.4.4", "as 6.4.3, the bad sequence cut across chops", p2, True)

    kosme = bytes.fromhex("cebae1bdb9cf83cebcceb5")
    for i in range(1, len(kosme) + 1):
        data = kosme[:i]
        try:
            data.decode("utf-8")
            echo_case("6.6.%d" % i, "prefix of %d bytes of '\u03ba\u1f79\u03c3\u03bc\u03b5' (valid)" % i, TEXT, data)
        except UnicodeDecodeError:
            fail_case("6.6.%d" % i, "prefix of %d bytes of '\u03ba\u1f79\u03c3\u03bc\u03b5' (invalid)" % i,
                      [(TEXT, data, True, 0)], codes=(1007,))
    for cid, hx in UTF8_VALID:
        echo_case(cid, "valid UTF-8: " + hx, TEXT, bytes.fromhex(hx))
    for cid, hx in UTF8_INVALID:
        fail_case(cid, "invalid UTF-8: " + hx[:40], [(TEXT, bytes.fromhex(hx), True, 0)], codes=(1007,))
    for i, hx in enumerate(noncharacters()):
        echo_case("6.22.%d" % (i + 1), "noncharacter (valid UTF-8): " + hx, TEXT, bytes.fromhex(hx))


def category7():
    @case("7.1.1", "a message, then a close: echo, then a clean close")
    def c711(p):
        p.send(TEXT, b"Hello World!")
        p.expect_echo(TEXT, b"Hello World!")
        p.finish()

    @case("7.1.2", "two close frames: the second is ignored")
    def c712(p):
        p.send(CLOSE, struct.pack("!H", 1000))
        p.send(CLOSE, struct.pack("!H", 1000))
        p.sent_close = True
        got = p.event()
        if got[:2] != ("close", 1000):
            raise Failed("expected the close echo, got " + short(got))
        p.expect_drop()

    def after_close(cid, desc, tail, allow_echo=None):
        @case(cid, desc)
        def run(p):
            if allow_echo:
                p.send(TEXT, allow_echo)
            p.send(CLOSE, struct.pack("!H", 1000))
            p.sent_close = True
            for op, pl, fin in tail:
                p.send(op, pl, fin)
            got = p.event()
            if allow_echo and got[0] == "msg":
                if got[2] != allow_echo:
                    raise Failed("wrong echo " + short(got))
                got = p.event()
            if got[:2] != ("close", 1000):
                raise Failed("expected only the close echo, got " + short(got))
            p.expect_drop()

    after_close("7.1.3", "a ping after the close: no pong", [(PING, b"ping", True)])
    after_close("7.1.4", "text after the close: no echo", [(TEXT, b"Hello World!", True)])

    @case("7.1.5", "a fragment, the close, then the last fragment: no echo")
    def c715(p):
        p.send(TEXT, b"fragment1", False)
        p.send(CLOSE, struct.pack("!H", 1000))
        p.sent_close = True
        p.send(CONT, b"fragment2", True)
        got = p.event()
        if got[:2] != ("close", 1000):
            raise Failed("expected only the close echo, got " + short(got))
        p.expect_drop()

    after_close("7.1.6", "256 KiB message, the close, then a ping", [(PING, b"ping", True)],
                allow_echo=b"BAsd7&jh23" * 26214 + b"BAsd")

    @case("7.3.1", "close without payload: answered without a code")
    def c731(p):
        p.send(CLOSE, b"")
        p.sent_close = True
        got = p.event()
        if got[0] != "close" or got[1] not in (1005, 1000):
            raise Failed("expected a close echo, got " + short(got))
        p.expect_drop()

    fail_case("7.3.2", "close with a 1-byte payload", [(CLOSE, b"\x03", True, 0)])

    @case("7.3.3", "close with code 1000")
    def c733(p):
        p.finish(1000)

    @case("7.3.4", "close with code 1000 and a reason")
    def c734(p):
        p.finish(1000, b"Hello World!")

    @case("7.3.5", "close with code 1000 and a reason of 123 bytes")
    def c735(p):
        p.finish(1000, b"*" * 123)

    fail_case("7.3.6", "close with a payload of 126 bytes", [(CLOSE, struct.pack("!H", 1000) + b"*" * 124, True, 0)])
    fail_case("7.5.1", "close reason not UTF-8",
              [(CLOSE, struct.pack("!H", 1000) + bytes.fromhex("cebae1bdb9cf83cebcceb5eda080656469746564"),
                True, 0)], codes=(1007,))
    for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]):
        @case("7.7.%d" % (i + 1), "close with valid code %d: echoed" % code)
        def run(p, code=code):
            p.finish(code)
    for i, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]):
        fail_case("7.9.%d" % (i + 1), "close with invalid code %d" % code, [(CLOSE, struct.pack("!H", code), True, 0)])
    for i, code in enumerate([5000, 65535]):
        fail_case("7.13.%d" % (i + 1), "close with out-of-range code %d" % code,
                  [(CLOSE, struct.pack("!H", code), True, 0)])


def category9(full):
    M = 1 << 20
    sizes = [64 * 1024, 256 * 1024, M, 4 * M, 8 * M, 16 * M] if full else [64 * 1024, 256 * 1024, M, 2 * M]

    def big_echo(cid, desc, op, n, frag=None, chop=None):
        @case(cid, desc, long=n >= M)
        def run(p):
            payload = (b"*" if op == TEXT else b"\xfe") * n
            if frag:
                for at in range(0, n, frag):
                    last = at + frag >= n
                    p.write(frame_bytes(TEXT if op == TEXT and at == 0 else BINARY if at == 0 else CONT,
                                        payload[at:at + frag], last))
            else:
                p.write(frame_bytes(op, payload), chop)
            p.expect_echo(op, payload, timeout=60)
            p.finish()

    for i, n in enumerate(sizes):
        big_echo("9.1.%d" % (i + 1), "text message of %d bytes" % n, TEXT, n)
        big_echo("9.2.%d" % (i + 1), "binary message of %d bytes" % n, BINARY, n)
    n = 4 * M if full else M
    for i, frag in enumerate([64, 256, 1024, 4096, 16384, 65536, 256 * 1024, M, 4 * M]):
        if frag > n:
            continue
        big_echo("9.3.%d" % (i + 1), "text of %d bytes in fragments of %d" % (n, frag), TEXT, n, frag=frag)
        big_echo("9.4.%d" % (i + 1), "binary of %d bytes in fragments of %d" % (n, frag), BINARY, n, frag=frag)
    n = M if full else 256 * 1024
    for i, chop in enumerate([64, 128, 256, 512, 1024, 2048]):
        big_echo("9.5.%d" % (i + 1), "text of %d bytes written in chops of %d" % (n, chop), TEXT, n, chop=chop)
        big_echo("9.6.%d" % (i + 1), "binary of %d bytes written in chops of %d" % (n, chop), BINARY, n, chop=chop)
    count = 1000 if full else 100
    for i, size in enumerate([0, 16, 64, 256, 1024, 4096]):
        for cat, op in (("9.7", TEXT), ("9.8", BINARY)):
            @case("%s.%d" % (cat, i + 1), "%d messages of %d bytes, one round trip each" % (count, size))
            def run(p, op=op, size=size):
                payload = (b"*" if op == TEXT else b"\xfe") * size
                for _ in range(count):
                    p.send(op, payload)
                    p.expect_echo(op, payload)
                p.finish()


def category10():
    @case("10.1.1", "text of 65536 bytes auto-fragmented into frames of 1300")
    def c1011(p):
        payload = b"*" * 65536
        for at in range(0, len(payload), 1300):
            p.send(TEXT if at == 0 else CONT, payload[at:at + 1300], at + 1300 >= len(payload))
        p.expect_echo(TEXT, payload)
        p.finish()


_payloads = {}


def payloads(kind, size, i):
    """compressible and incompressible payloads, as 12.x varies them; binary
    ones differ per message i in their first bytes"""
    key = (kind, size)
    if key not in _payloads:
        _payloads[key] = make_payload(kind, size)
    data, op = _payloads[key]
    if op == BINARY and size >= 8:
        data = struct.pack("!Q", i) + data[8:]
    return data, op


def make_payload(kind, size):
    rnd = random.Random(kind * 1000003 + size)
    if kind == 0:  # artificial: a short pattern repeated
        return (b"Hello, World! " * (size // 14 + 1))[:size], TEXT
    if kind == 1:  # JSON-like text
        parts, n = [], 0
        while n < size:
            s = '{"id": %d, "name": "item-%d", "tags": ["a%d", "b%d"], "price": %d.%02d},' % (
                n, rnd.randrange(1000), rnd.randrange(50), rnd.randrange(50), rnd.randrange(100), rnd.randrange(100))
            parts.append(s)
            n += len(s)
        return "".join(parts).encode()[:size], TEXT
    if kind == 2:  # HTML-like text with some Unicode
        parts, n = [], 0
        words = ["<p>", "</p>", "<div class=\"x\">", "</div>", "κόσμε", "lorem", "ipsum", "\u00e9t\u00e9", "dolor"]
        while n < size:
            w = words[rnd.randrange(len(words))].encode() + b" "
            parts.append(w)
            n += len(w)
        data = b"".join(parts)[:size]
        while True:  # cut at a character boundary
            try:
                data.decode("utf-8")
                return data, TEXT
            except UnicodeDecodeError:
                data = data[:-1] + b" "
    if kind == 3:  # structured binary
        return bytes((i * 7 + rnd.randrange(4)) & 0xFF for i in range(size)), BINARY
    return rnd.randbytes(size), BINARY  # random


def compressed_case(cid, desc, offer, kind, size, count, frag):
    @case(cid, desc, offer=offer, long=True)
    def run(p):
        if p.deflate is None:
            raise Failed("permessage-deflate not accepted for: " + offer)
        for i in range(count):
            data, op = payloads(kind, size, i)
            z = p.compress(data)
            if frag:
                chunks = [z[at:at + frag] for at in range(0, len(z), frag)] or [b""]
                for j, ch in enumerate(chunks):
                    p.write(frame_bytes(op if j == 0 else CONT, ch, j == len(chunks) - 1, 4 if j == 0 else 0))
            else:
                p.write(frame_bytes(op, z, True, 4))
            p.expect_echo(op, data, timeout=30)
        p.finish()


SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]


def category12(full):
    kinds = ["artificial text", "JSON-like text", "HTML-like text", "structured binary", "random binary"]
    for k, name in enumerate(kinds):
        n = 0
        for size in SIZES:
            n += 1
            count = 1000 if full else (20 if size <= 4096 else 4)
            compressed_case("12.%d.%d" % (k + 1, n), "%d %s messages of %d bytes, compressed" % (count, name, size),
                            "permessage-deflate", k, size, count, None)
        for size in SIZES[2:]:
            n += 1
            count = 1000 if full else 4
            compressed_case("12.%d.%d" % (k + 1, n),
                            "%d %s messages of %d bytes, compressed, in frames of 256" % (count, name, size),
                            "permessage-deflate", k, size, count, 256)


OFFERS = [
    "permessage-deflate",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=8",
    "permessage-deflate; server_max_window_bits=15",
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=8, "
    "permessage-deflate; server_no_context_takeover, permessage-deflate",
]


def category13(full):
    for g, offer in enumerate(OFFERS):
        n = 0
        for size in SIZES:
            n += 1
            count = 1000 if full else (10 if size <= 4096 else 3)
            compressed_case("13.%d.%d" % (g + 1, n), "%d messages of %d bytes, offer: %s" % (count, size, offer),
                            offer, 1, size, count, None)
        for size in SIZES[2:]:
            n += 1
            count = 1000 if full else 3
            compressed_case("13.%d.%d" % (g + 1, n),
                            "%d messages of %d bytes in frames of 256, offer: %s" % (count, size, offer),
                            offer, 2, size, count, 256)


def build(full):
    category1()
    category2()
    category3()
    category4()
    category5()
    category6()
    category7()
    category9(full)
    category10()
    category12(full)
    category13(full)


def run_case(port, path, c):
    cid, desc, fn, offer, _ = c
    p = None
    try:
        p = Peer(port, path, offer)
        fn(p)
        return "OK"
    except NonStrict as e:
        return "NON-STRICT: %s" % e
    except Failed as e:
        return "FAILED: %s" % e
    except (OSError, ValueError, zlib.error) as e:
        return "FAILED: %s: %s" % (type(e).__name__, e)
    finally:
        if p:
            p.close()


def case_key(cid):
    return tuple(int(x) for x in cid.split("."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--path", default="/ws/echo")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("prefix", nargs="*")
    a = ap.parse_args()
    build(a.full)
    cases = sorted(CASES, key=lambda c: case_key(c[0]))
    if a.prefix:
        cases = [c for c in cases if any(c[0] == x or c[0].startswith(x + ".") for x in a.prefix)]
    if a.list:
        for c in cases:
            print(c[0], c[1])
        return 0
    counts = {"OK": 0, "NON-STRICT": 0, "FAILED": 0}
    for c in cases:
        t0 = time.monotonic()
        verdict = run_case(a.port, a.path, c)
        counts[verdict.split(":")[0]] += 1
        print("%s %s (%.0f ms)" % (c[0], verdict, (time.monotonic() - t0) * 1000), flush=True)
    print("summary: %d OK, %d NON-STRICT, %d FAILED" % (counts["OK"], counts["NON-STRICT"], counts["FAILED"]))
    return 0 if counts["OK"] == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
