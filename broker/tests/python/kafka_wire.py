"""A few Kafka requests spoken on a raw socket, for tests that must do what no
well-behaved client does: requests before a login, tokens out of order, replayed
SCRAM messages, stalled or garbage handshakes. Only the non-flexible versions
(request header v1) are used, so each message is a handful of struct fields.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct

API_VERSIONS = 18
METADATA = 3
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
ALTER_CLIENT_QUOTAS = 49
DESCRIBE_ACLS = 29
DESCRIBE_CLUSTER = 60

# Kafka error codes the tests look for.
SASL_AUTHENTICATION_FAILED = 58
ILLEGAL_SASL_STATE = 34
UNSUPPORTED_SASL_MECHANISM = 33


def kstring(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def kbytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


class Conn:
    """One connection; `tls_context` wraps it in TLS first."""

    def __init__(self, port: int, tls_context: ssl.SSLContext | None = None, timeout=10.0):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.corr = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, api_key: int, version: int, body: bytes) -> int:
        self.corr += 1
        header = struct.pack(">hhi", api_key, version, self.corr) + kstring("raw-test")
        msg = header + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        return self.corr

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return out

    def response(self) -> bytes:
        """The next response body after its correlation id (checked)."""
        (size,) = struct.unpack(">i", self.recv_exact(4))
        data = self.recv_exact(size)
        (corr,) = struct.unpack(">i", data[:4])
        assert corr == self.corr, f"correlation {corr}, expected {self.corr}"
        return data[4:]

    def closed_by_peer(self) -> bool:
        """True when the broker closed the connection (EOF or reset) before sending
        anything more."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    # -- requests ------------------------------------------------------------
    def api_versions(self) -> int:
        self.send(API_VERSIONS, 0, b"")
        (err,) = struct.unpack(">h", self.response()[:2])
        return err

    def metadata_request(self) -> None:
        self.send(METADATA, 1, struct.pack(">i", -1))

    def handshake(self, mechanism: str) -> tuple[int, list[str]]:
        self.send(SASL_HANDSHAKE, 1, kstring(mechanism))
        body = self.response()
        err, n = struct.unpack(">hi", body[:6])
        pos, names = 6, []
        for _ in range(n):
            (ln,) = struct.unpack(">h", body[pos:pos + 2])
            names.append(body[pos + 2:pos + 2 + ln].decode())
            pos += 2 + ln
        return err, names

    def authenticate(self, token: bytes) -> tuple[int, str | None, bytes, int]:
        """SaslAuthenticate v1: (error code, message, auth bytes, session lifetime ms)."""
        self.send(SASL_AUTHENTICATE, 1, kbytes(token))
        body = self.response()
        err, mlen = struct.unpack(">hh", body[:4])
        pos = 4
        message = None
        if mlen >= 0:
            message = body[pos:pos + mlen].decode()
            pos += mlen
        (alen,) = struct.unpack(">i", body[pos:pos + 4])
        auth = body[pos + 4:pos + 4 + max(alen, 0)]
        pos += 4 + max(alen, 0)
        (lifetime,) = struct.unpack(">q", body[pos:pos + 8])
        return err, message, auth, lifetime


def knullable(s: str | None) -> bytes:
    return struct.pack(">h", -1) if s is None else kstring(s)


def alter_client_quotas(conn: "Conn", entity: list[tuple[str, str | None]],
                        ops: list[tuple[str, float | None]]) -> tuple[int, str | None]:
    """AlterClientQuotas v0 for one entity (a None name is the default entity; a None
    value removes the key): the entry's (error code, message)."""
    body = struct.pack(">i", 1) + struct.pack(">i", len(entity))
    for kind, name in entity:
        body += kstring(kind) + knullable(name)
    body += struct.pack(">i", len(ops))
    for key, value in ops:
        body += kstring(key) + struct.pack(">d?", value or 0.0, value is None)
    body += struct.pack(">?", False)
    conn.send(ALTER_CLIENT_QUOTAS, 0, body)
    resp = conn.response()
    # throttle, entries count, then the first entry's error code and message.
    err, mlen = struct.unpack(">hh", resp[8:12])
    message = resp[12:12 + mlen].decode() if mlen >= 0 else None
    return err, message


def describe_acls(conn: "Conn") -> int:
    """DescribeAcls v1 matching every ACL: the response's error code."""
    any_, null = struct.pack(">b", 1), struct.pack(">h", -1)
    conn.send(DESCRIBE_ACLS, 1, any_ + null + any_ + null + null + any_ + any_)
    (err,) = struct.unpack(">h", conn.response()[4:6])
    return err


def describe_cluster(conn: "Conn") -> int:
    """DescribeCluster v0 (flexible: header v2 with an empty tag buffer): the error code."""
    conn.corr += 1
    header = struct.pack(">hhi", DESCRIBE_CLUSTER, 0, conn.corr) + kstring("raw-test") + b"\x00"
    msg = header + b"\x00" + b"\x00"  # include_cluster_authorized_operations=false, tags
    conn.sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", conn.recv_exact(4))
    data = conn.recv_exact(size)
    # correlation id, response header tags, throttle, then the error code.
    (err,) = struct.unpack(">h", data[9:11])
    return err


class ScramClient:
    """RFC 5802 client side, enough to log in and to replay messages."""

    def __init__(self, user: str, password: str, mechanism: str = "SCRAM-SHA-256"):
        self.user, self.password = user, password
        self.hash = "sha256" if mechanism.endswith("256") else "sha512"
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.bare = f"n={user},r={self.nonce}"

    def first(self) -> bytes:
        return ("n,," + self.bare).encode()

    def final(self, server_first: bytes) -> bytes:
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        salted = hashlib.pbkdf2_hmac(self.hash, self.password.encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored = hashlib.new(self.hash, client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.bare},{sf},{without_proof}".encode()
        signature = hmac.new(stored, auth_message, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def scram_login(conn: Conn, user: str, password: str, mechanism: str = "SCRAM-SHA-256"):
    """A whole SCRAM login; returns the last SaslAuthenticate answer, the client and
    the client-final message sent (for replay tests)."""
    err, _ = conn.handshake(mechanism)
    assert err == 0, f"handshake error {err}"
    client = ScramClient(user, password, mechanism)
    err, msg, server_first, _ = conn.authenticate(client.first())
    assert err == 0, f"client-first refused: {err} {msg}"
    final = client.final(server_first)
    return conn.authenticate(final), client, final
