"""A raw-socket HTTP/1.1 client for the server matrix: it reports how a
response *ended*, which no HTTP library shows as such.

:func:`exchange` sends one request on a socket (new or kept alive) and
parses the response by its framing (chunked, Content-Length, or until the
connection closes): ``ending`` is ``'complete'`` (the framing's end, or the
close of a close-delimited body), ``'cut'`` (the connection closed before
the framing's end) or ``'reset'`` (an RST: a failed transfer for any client).
Every read has a deadline: nothing here waits forever.
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    version: str
    headers: dict[str, str]
    body: bytes
    ending: str  # 'complete', 'cut' or 'reset'
    raw: bytes = field(repr=False, default=b'')
    #: bytes received after this response (the start of the next one)
    leftover: bytes = field(repr=False, default=b'')

    @property
    def framing(self) -> str:
        if 'chunked' in self.headers.get('transfer-encoding', '').lower():
            return 'chunked'
        if 'content-length' in self.headers:
            return 'length'
        return 'close'

    @property
    def keeps_alive(self) -> bool:
        connection = self.headers.get('connection', '').lower()
        if self.version == 'HTTP/1.0':
            return connection == 'keep-alive' and self.framing != 'close'
        return connection != 'close' and self.framing != 'close'

    @property
    def client_can_tell(self) -> bool:
        """The client sees a failure, not a complete body."""
        return self.ending != 'complete'


class Reader:
    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.buffer = b''
        self.raw = b''
        self.eof = False
        self.reset = False

    def fill(self) -> bool:
        """Read more; False at EOF or RST."""
        if self.eof or self.reset:
            return False
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError('no response within the deadline; got %r' % self.raw[-300:])
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.reset = True
            return False
        except socket.timeout:
            raise AssertionError('no response within the deadline; got %r' % self.raw[-300:]) from None
        if not data:
            self.eof = True
            return False
        self.buffer += data
        self.raw += data
        return True

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buffer:
            if not self.fill():
                return None
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not self.fill():
                return None
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def connect(server, timeout: float = 15.0) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


def send(sock: socket.socket, path: str, method: str = 'GET', version: str = 'HTTP/1.1') -> None:
    sock.sendall(('%s %s %s\r\nHost: 127.0.0.1\r\n\r\n' % (method, path, version)).encode('latin-1'))


class NotHTTP(AssertionError):
    """What came is not an HTTP response."""


def receive(sock: socket.socket, method: str = 'GET', timeout: float = 15.0, until: bytes = b'',
            leftover: bytes = b'') -> Response:
    """Read one response (after ``leftover``, what the previous response on
    this connection left); with ``until``, stop (ending ``'open'``) once the
    body contains it."""
    reader = Reader(sock, time.monotonic() + timeout)
    reader.buffer = reader.raw = leftover
    head = reader.until(b'\r\n\r\n')
    if head is None:
        raise AssertionError('the connection ended before the headers: %r' % reader.raw)
    lines = head.decode('latin-1').split('\r\n')
    if not lines[0].startswith('HTTP/'):
        raise NotHTTP('not an HTTP status line: %r' % reader.raw[:200])
    version, status = lines[0].split(' ')[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    response = Response(int(status), version, headers, b'', 'complete')

    def done(ending):
        response.ending = ending
        response.raw = reader.raw
        response.leftover = reader.buffer
        return response

    def lost():
        return done('reset' if reader.reset else 'cut')

    if method == 'HEAD' or response.status in (204, 304):
        return done('complete')
    if response.framing == 'chunked':
        while True:
            size_line = reader.until(b'\r\n')
            if size_line is None:
                return lost()
            size = int(size_line.split(b';')[0], 16)
            data = reader.exactly(size + 2)
            if data is None:
                return lost()
            if size == 0:
                return done('complete')
            response.body += data[:-2]
            if until and until in response.body:
                return done('open')
    if response.framing == 'length':
        data = reader.exactly(int(headers['content-length']))
        if data is None:
            return lost()
        response.body = data
        return done('complete')
    # close-delimited: the end of the connection is the end of the body
    while True:
        response.body = reader.buffer
        if until and until in response.body:
            return done('open')
        if not reader.fill():
            response.body = reader.buffer
            return done('reset' if reader.reset else 'complete')


def exchange(server, path: str, method: str = 'GET', timeout: float = 15.0) -> Response:
    """One request on a new connection, read to its end."""
    with connect(server, timeout) as sock:
        send(sock, path, method)
        return receive(sock, method, timeout)


def close_with_fin(sock: socket.socket) -> None:
    """Close as a browser closing a tab does: a FIN (everything received
    was read, so the kernel sends no RST)."""
    sock.close()


def close_with_rst(sock: socket.socket) -> None:
    """Close as a crashed client: an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()
