"""TLS for `voxhost serve`: https and wss on the server's one port.

Production keeps TLS on the load balancer (the CDK stack's ALB); this is for a
studio's own machines and for development, where the official realtime clients
insist on `wss://` (the Node SDK's `OpenAIRealtimeWebSocket` and the Python SDK's
beta `client.beta.realtime` build it from an https base URL, whatever it says).

Two ways in:
- a certificate the studio has: `--ssl-certfile/--ssl-keyfile` (VOXHOST_TLS_CERTFILE,
  VOXHOST_TLS_KEYFILE);
- development (`--tls-dev`, VOXHOST_TLS_DEV): a local CA and a certificate it signs
  for localhost, 127.0.0.1 and ::1, made once with `cryptography` and kept under
  `$VOXHOST_CACHE_DIR/tls/`. Clients trust the CA alone (NODE_EXTRA_CA_CERTS,
  SSL_CERT_FILE), not a self-signed leaf: Node and OpenSSL both refuse a leaf used
  as its own CA unless told to skip verification, which must never be the advice.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

DEV_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650  # the CA a developer trusts once
LEAF_DAYS = 397  # the most days a browser accepts for a leaf certificate
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServerTls:
    certfile: Path
    keyfile: Path
    ca_file: Path | None = None  # the development CA to trust, when voxhost made it


def dev_certificate(directory: Path, *, now: dt.datetime | None = None) -> ServerTls:
    """The development CA and localhost certificate under `directory`, made on first use
    (and the leaf remade when it nears its end or no longer matches the CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    now = now or dt.datetime.now(dt.UTC)
    ca_cert, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    leaf_cert, leaf_key = directory / "localhost.pem", directory / "localhost-key.pem"
    if not (ca_cert.is_file() and ca_key.is_file()) or _expiring(ca_cert, now):
        ca_pem, ca_key_pem = _make_ca(now)
        _write(ca_key, ca_key_pem, private=True)
        _write(ca_cert, ca_pem)
        leaf_cert.unlink(missing_ok=True)
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    if not leaf_cert.is_file() or not leaf_key.is_file() or _expiring(leaf_cert, now) or \
            x509.load_pem_x509_certificate(leaf_cert.read_bytes()).issuer != ca.subject:
        signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        pem, key_pem = _make_leaf(ca, signer, now)
        _write(leaf_key, key_pem, private=True)
        _write(leaf_cert, pem)
    return ServerTls(leaf_cert, leaf_key, ca_cert)


def trust_instructions(tls: ServerTls, port: int) -> str:
    """What a developer runs so that clients trust the development CA."""
    ca = tls.ca_file
    return "\n".join([
        f"TLS (development): https://localhost:{port}/v1 and wss://localhost:{port}/v1/realtime, "
        f"signed by a local CA made for this machine: {ca}",
        "Trust that CA in the clients' environment (never disable verification):",
        f"  Node:   export NODE_EXTRA_CA_CERTS={ca}",
        f"  Python: export SSL_CERT_FILE={ca}   (replaces the default roots in that process; "
        "for both, append it to a copy of certifi's bundle)",
        f"  curl:   curl --cacert {ca} https://localhost:{port}/health",
    ])


def _expiring(path: Path, now: dt.datetime) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return True
    return cert.not_valid_after_utc - RENEW_BEFORE <= now


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voxhost development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(now: dt.datetime) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"voxhost development CA ({os.uname().nodename})")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def _make_leaf(ca, ca_key, now: dt.datetime) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) if not _is_ip(n) else x509.IPAddress(ipaddress.ip_address(n)) for n in DEV_NAMES]
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def _private_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class TlsConfigError(ValueError):
    """Settings that name half a certificate, or files that are not there."""


def server_tls(settings) -> ServerTls | None:
    """What `voxhost serve` serves TLS with: the configured certificate, the development
    one (made now if needed), or None (plain http and ws)."""
    certfile, keyfile = settings.tls_certfile, settings.tls_keyfile
    if (certfile is None) != (keyfile is None):
        raise TlsConfigError("--ssl-certfile and --ssl-keyfile (VOXHOST_TLS_CERTFILE, VOXHOST_TLS_KEYFILE) go "
                             "together: set both, or neither.")
    if certfile is not None and keyfile is not None:
        if settings.tls_dev:
            raise TlsConfigError("--tls-dev makes its own certificate: drop it, or drop --ssl-certfile/--ssl-keyfile.")
        for path in (certfile, keyfile):
            if not Path(path).is_file():
                raise TlsConfigError(f"TLS file not found: {path}")
        return ServerTls(Path(certfile), Path(keyfile))
    if settings.tls_dev:
        return dev_certificate(settings.cache_dir / "tls")
    return None
