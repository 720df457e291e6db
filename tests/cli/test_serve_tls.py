"""`voxhost serve` with TLS: the flags reach uvicorn, `--tls-dev` makes a CA and a localhost
certificate once (and says how to trust it), and half a configuration is refused.
The clients over that TLS are tested in tests/clients/."""

from __future__ import annotations

import contextlib
import ssl

import pytest
from typer.testing import CliRunner

from voxhost.cli.main import app

ENV = ("VOXHOST_PORT", "VOXHOST_TLS_CERTFILE", "VOXHOST_TLS_KEYFILE", "VOXHOST_TLS_DEV", "VOXHOST_CACHE_DIR",
       "VOXHOST_TTS_ENGINES")


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Runs `voxhost serve ARGS` up to the point uvicorn would start, and returns its config."""
    from voxhost.ops.settings import get_settings

    for name in ENV:  # serve turns flags into env vars: give them back afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("VOXHOST_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VOXHOST_TTS_ENGINES", "")
    monkeypatch.setattr("voxhost.ops.logging.configure_logging", lambda *a, **kw: None)
    started = {}

    class NotStarted:
        def __init__(self, config, state, drain_timeout):
            started["config"] = config

        def run(self, sockets=None):
            pass

    monkeypatch.setattr("voxhost.api.lifecycle.DrainingServer", NotStarted)

    def serve(*args):
        result = CliRunner().invoke(app, ["serve", *args])
        return result, started.get("config")

    yield serve
    get_settings.cache_clear()


def test_tls_dev_makes_a_ca_and_a_localhost_certificate_once(served, tmp_path):
    result, config = served("--tls-dev", "--port", "8443")
    assert result.exit_code == 0, result.output
    tls = tmp_path / "tls"
    assert config.ssl_certfile == str(tls / "localhost.pem") and config.ssl_keyfile == str(tls / "localhost-key.pem")
    assert f"NODE_EXTRA_CA_CERTS={tls / 'ca.pem'}" in result.output
    assert f"SSL_CERT_FILE={tls / 'ca.pem'}" in result.output and "https://localhost:8443/v1" in result.output
    assert (tls / "ca-key.pem").stat().st_mode & 0o077 == 0 and (tls / "localhost-key.pem").stat().st_mode & 0o077 == 0
    # The CA alone makes a client trust the server, for each name a developer uses.
    client = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    for name in ("localhost", "127.0.0.1", "::1"):
        _handshake(client, server, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server, "voxhost.example.com")
    # Made once: a second start keeps the CA a developer already trusts.
    ca = (tls / "ca.pem").read_bytes()
    served("--tls-dev")
    assert (tls / "ca.pem").read_bytes() == ca


def test_a_studio_certificate_is_served_as_given(served, tmp_path):
    from voxhost.ops.tls import dev_certificate

    given = dev_certificate(tmp_path / "elsewhere")
    result, config = served("--ssl-certfile", str(given.certfile), "--ssl-keyfile", str(given.keyfile))
    assert result.exit_code == 0, result.output
    assert (config.ssl_certfile, config.ssl_keyfile) == (str(given.certfile), str(given.keyfile))
    assert "NODE_EXTRA_CA_CERTS" not in result.output  # a real certificate needs no trust instructions


@pytest.mark.parametrize("args, says", [
    (["--ssl-certfile", "cert.pem"], "go together"),
    (["--ssl-certfile", "missing.pem", "--ssl-keyfile", "missing-key.pem"], "not found"),
])
def test_half_a_tls_configuration_is_refused(served, args, says):
    result, config = served(*args)
    assert result.exit_code == 2 and says in result.output and config is None


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A TLS handshake in memory: the client checks the server's certificate for `name`."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if c.version() and s.version():
            try:
                c.do_handshake()
                return
            except ssl.SSLWantReadError:
                continue
    raise AssertionError("handshake did not finish")
