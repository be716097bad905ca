"""Test certificates made on the fly with `cryptography`: a CA, the broker's
certificate for 127.0.0.1 and localhost, a client certificate for alice (the one the
mapping rules turn into `User:alice`), and one from a CA the broker does not know.
Used by the security tests of the Python and the Java suites.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str, ou: str | None = None) -> x509.Name:
    """Encoded most general first, as CAs issue them, so the RFC 4514 string Kafka and
    the broker print reads `CN=…,OU=…,O=…`."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice Test")]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _cert(subject, key, issuer, issuer_key, ca=False, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(dir_: Path, stem: str, cert, key) -> tuple[str, str]:
    c, k = dir_ / f"{stem}.pem", dir_ / f"{stem}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return str(c), str(k)


class Certs:
    """A CA, the broker's certificate (for 127.0.0.1 and localhost), a client
    certificate for alice, and a client certificate from a CA the broker does not know."""

    def __init__(self, dir_: Path):
        self.dir = dir_
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = _name("Sluice Test CA")
        ca = _cert(self.ca_name, self.ca_key, self.ca_name, self.ca_key, ca=True)
        self.ca, _ = _write(dir_, "ca", ca, self.ca_key)
        self.server, self.server_key = self.issue_server("server")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name("Alice", "ServiceUsers"), key, self.ca_name, self.ca_key)
        self.alice, self.alice_key = _write(dir_, "alice", cert, key)
        rogue_key = ec.generate_private_key(ec.SECP256R1())
        rogue_name = _name("Rogue CA")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name("alice", "ServiceUsers"), key, rogue_name, rogue_key)
        self.rogue, self.rogue_key = _write(dir_, "rogue", cert, key)

    def issue_server(self, stem: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = _cert(_name(f"broker-{stem}"), key, self.ca_name, self.ca_key, sans=sans)
        return _write(self.dir, stem, cert, key)

    def context(self, client_cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        if client_cert:
            ctx.load_cert_chain(*client_cert)
        return ctx


