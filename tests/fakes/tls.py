"""A throwaway certificate authority and a server certificate it signs, for fakes that
must speak HTTPS the way a real server does (the in-cluster API server, for one).

Keys are EC P-256, made fresh per call: nothing is shared between tests, and a client
that trusts one test's CA trusts no other test's server.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A CA's key signs certificates and revocation lists, nothing else.
CA_USAGE = x509.KeyUsage(
    **dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    ),
    key_cert_sign=True,
    crl_sign=True,
)


@dataclass(frozen=True)
class Tls:
    ca_file: Path  # the CA certificate (PEM): what a client is told to trust
    server: ssl.SSLContext  # serves a certificate for 127.0.0.1, signed by that CA


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[x509.ExtensionType],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    for extension in extensions:
        # RFC 5280: constraints and key usage are critical; the rest need not be.
        critical = isinstance(extension, x509.BasicConstraints | x509.KeyUsage)
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def throwaway_tls(directory: Path) -> Tls:
    """A CA and a certificate for 127.0.0.1 it signs; ``ca.crt``, the server's certificate
    and its key are written under ``directory``."""
    host = "127.0.0.1"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(
        "throwaway test CA",
        ca_key,
        None,
        ca_key,
        [
            x509.BasicConstraints(ca=True, path_length=0),
            CA_USAGE,
        ],
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        host,
        server_key,
        ca,
        ca_key,
        [
            x509.BasicConstraints(ca=False, path_length=None),
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return Tls(ca_file=ca_file, server=context)
