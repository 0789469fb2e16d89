"""Logging in to NATS and speaking TLS, against real nats-server processes.

Servers are started by the tests with a user and password, a token, NKeys,
and TLS (a throw-away CA and certificates made here with the ``cryptography``
package). A refused login says so, fast, and names what to check; ``tls://``
never falls back to plaintext.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import itertools
import json
import os
import time

import pytest

pytest.importorskip("nats")

from hms_bus import Bus, HmsBusError  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402
from hms_bus.backends.nats.auth import ENV, security_from  # noqa: E402
from hms_bus.server import NatsServer, find_nats_server  # noqa: E402

try:
    find_nats_server()
except HmsBusError as exc:  # pragma: no cover - the dev extra installs it
    pytest.skip(str(exc), allow_module_level=True)

PASSWORD = "s3cret-pw"
TOKEN = "t0ken-abc123"
_n = itertools.count()


@pytest.fixture(autouse=True)
def _no_credentials_in_the_environment(monkeypatch):
    for name in (*ENV.values(), "HMS_BUS_URL"):
        monkeypatch.delenv(name, raising=False)


def _stream() -> str:
    n = next(_n)
    return f"stream=A{n}&prefix=a{n}"


def _roundtrip(url: str, **kwargs) -> list:
    with Bus(nats_backend(url, **kwargs), src="test") as bus:
        bus.publish("orders.new", {"n": 1})
        bus.flush(20)
        return [ev.data for ev in bus.replay("orders.*")]


def _refused(url: str, **kwargs) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(HmsBusError) as info:
        nats_backend(url, **kwargs)
    return str(info.value), time.monotonic() - start


# -- a throw-away CA ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (PEM files),
    and a second CA that signed nothing of ours."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.timezone.utc)

    def write(name, key, cert):
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def make(name, issuer=None, *, ca=False, usage=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        signer_key, signer_name = (key, subject) if issuer is None else issuer
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(signer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            ).add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(signer_key, hashes.SHA256())
        write(name, key, cert)
        return key, subject

    ca = make("ca", ca=True)
    make("server", ca, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    make("client", ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    make("other-ca", ca=True)
    return {name: str(folder / name) for name in ("ca", "server", "client", "other-ca")}


# -- servers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_server():
    with NatsServer(user="alice", password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def token_server():
    with NatsServer(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server():
    with NatsServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(pki):
    tls = (pki["server"] + ".pem", pki["server"] + ".key")
    with NatsServer(tls=tls, user="alice", password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(pki):
    tls = (pki["server"] + ".pem", pki["server"] + ".key")
    with NatsServer(tls=tls, tls_ca=pki["ca"] + ".pem") as server:
        yield server


@pytest.fixture(scope="module")
def nkey_user():
    nkeys = pytest.importorskip("nkeys")
    import os

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    public = nkeys.from_seed(bytearray(seed.encode())).public_key.decode()
    return seed, public


@pytest.fixture(scope="module")
def nkey_server(nkey_user):
    with NatsServer(nkeys=[nkey_user[1]]) as server:
        yield server


@pytest.fixture(scope="module")
def operator(tmp_path_factory, nkey_user):
    """An operator-mode server (operator, system account, one account with JetStream,
    JWTs signed here with NKeys), a ``.creds`` file for one of its users, and a
    ``.creds`` file signed by an account the server does not know."""
    nkeys = pytest.importorskip("nkeys")
    folder = tmp_path_factory.mktemp("creds")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def pair(prefix):
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        kp = nkeys.from_seed(bytearray(seed))
        return seed.decode(), kp.public_key.decode(), kp

    def signed(issuer, subject, name, claims):
        header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        jti = base64.b32encode(os.urandom(20)).decode().rstrip("=")
        body = {"jti": jti, "iat": int(time.time()), "iss": issuer[1], "name": name}
        body = b64(json.dumps({**body, "sub": subject, "nats": {**claims, "version": 2}}).encode())
        return f"{header}.{body}.{b64(issuer[2].sign(f'{header}.{body}'.encode()))}"

    def creds(path, account, user):
        jwt = signed(account, user[1], "learner", {"type": "user", **limits})
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user[0]}\n------END USER NKEY SEED------\n"
        )
        return str(path)

    limits = {"subs": -1, "data": -1, "payload": -1}  # -1: no limit (0 would allow nothing)
    js = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
    op = pair(nkeys.PREFIX_BYTE_OPERATOR)
    system, account, stranger = (pair(nkeys.PREFIX_BYTE_ACCOUNT) for _ in range(3))
    user = pair(nkeys.PREFIX_BYTE_USER)
    accounts = {
        system[1]: signed(
            op, system[1], "SYS", {"type": "account", "limits": {**limits, "conn": -1}}
        ),
        account[1]: signed(
            op, account[1], "HMS", {"type": "account", "limits": {**limits, "conn": -1, **js}}
        ),
    }
    config = "\n".join(
        [
            f'operator: "{signed(op, op[1], "op", {"type": "operator"})}"',
            f"system_account: {system[1]}",
            "resolver: MEMORY",
            "resolver_preload: {" + ", ".join(f'{k}: "{v}"' for k, v in accounts.items()) + "}",
        ]
    )
    with NatsServer(extra_config=config) as server:
        yield {
            "server": server,
            "creds": creds(folder / "learner.creds", account, user),
            "stranger": creds(folder / "stranger.creds", stranger, user),
        }


# -- user and password ------------------------------------------------------------------------


def test_nats_password_in_the_url_logs_in(password_server):
    url = f"nats://alice:{PASSWORD}@127.0.0.1:{password_server.port}?{_stream()}"
    assert _roundtrip(url) == [{"n": 1}]


def test_nats_wrong_password_fails_fast_and_says_so(password_server):
    url = f"nats://alice:wrong-pw-1@127.0.0.1:{password_server.port}"
    text, took = _refused(url)
    assert took < 5
    assert text == (
        f"NATS at nats://alice:***@127.0.0.1:{password_server.port} refused the credentials "
        f"(Authorization Violation): check the user and password in the URL"
    )
    assert "make nats" not in text and "wrong-pw-1" not in text


def test_nats_wrong_password_in_hms_bus_url_names_the_variable(password_server, monkeypatch):
    url = f"nats://alice:wrong-pw-2@127.0.0.1:{password_server.port}"
    monkeypatch.setenv("HMS_BUS_URL", url)
    text, _ = _refused(url)
    assert text.endswith("check the user and password in HMS_BUS_URL")


def test_nats_password_from_the_environment_keeps_it_out_of_the_url(password_server, monkeypatch):
    monkeypatch.setenv("HMS_BUS_PASSWORD", PASSWORD)
    url = f"nats://alice@127.0.0.1:{password_server.port}?{_stream()}"
    assert _roundtrip(url) == [{"n": 1}]
    monkeypatch.setenv("HMS_BUS_USER", "alice")
    assert _roundtrip(f"nats://127.0.0.1:{password_server.port}?{_stream()}") == [{"n": 1}]
    monkeypatch.setenv("HMS_BUS_PASSWORD", "wrong-pw-3")
    text, _ = _refused(f"nats://127.0.0.1:{password_server.port}")
    assert "refused the credentials" in text
    assert text.endswith("check the user and password in HMS_BUS_USER/HMS_BUS_PASSWORD")


def test_nats_password_as_keywords(password_server):
    url = f"nats://127.0.0.1:{password_server.port}?{_stream()}"
    assert _roundtrip(url, user="alice", password=PASSWORD) == [{"n": 1}]
    text, _ = _refused(url, user="alice", password="nope-pw")
    assert text.endswith("check the user and password you passed")


def test_nats_use_passes_login_keywords_to_the_backend(password_server):
    import hms_bus

    url = f"nats://127.0.0.1:{password_server.port}?{_stream()}"
    before = hms_bus.bus._default
    try:
        with hms_bus.use(url, user="alice", password=PASSWORD, src="test") as bus:
            assert PASSWORD not in repr(bus)
            bus.publish("orders.new", {"n": 2})
            bus.flush(20)
            assert [ev.data for ev in bus.replay("orders.*")] == [{"n": 2}]
    finally:
        hms_bus.bus._default = before


def test_nats_no_credentials_for_a_server_that_wants_them(password_server):
    text, took = _refused(f"nats://127.0.0.1:{password_server.port}")
    assert took < 5
    assert "refused the credentials (Authorization Violation): the server wants credentials" in (
        text
    )


# -- tokens ----------------------------------------------------------------------------------


def test_nats_token_in_the_url_or_the_environment(token_server, monkeypatch):
    assert _roundtrip(f"nats://{TOKEN}@127.0.0.1:{token_server.port}?{_stream()}") == [{"n": 1}]
    monkeypatch.setenv("HMS_BUS_TOKEN", TOKEN)
    assert _roundtrip(f"nats://127.0.0.1:{token_server.port}?{_stream()}") == [{"n": 1}]


def test_nats_wrong_token_says_which_token(token_server, monkeypatch):
    text, took = _refused(f"nats://bad-token-1@127.0.0.1:{token_server.port}")
    assert took < 5
    assert text == (
        f"NATS at nats://***@127.0.0.1:{token_server.port} refused the credentials "
        f"(Authorization Violation): check the token in the URL"
    )
    monkeypatch.setenv("HMS_BUS_TOKEN", "bad-token-2")
    text, _ = _refused(f"nats://127.0.0.1:{token_server.port}")
    assert text.endswith("check the token in HMS_BUS_TOKEN") and "bad-token-2" not in text


# -- NKeys and .creds files -----------------------------------------------------------------------


def test_nats_nkey_seed_from_the_environment_or_a_file(
    nkey_server, nkey_user, monkeypatch, tmp_path
):
    seed, _ = nkey_user
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(seed + "\n")
    url = f"nats://127.0.0.1:{nkey_server.port}"
    assert _roundtrip(f"{url}?{_stream()}&nkey={seed_file}") == [{"n": 1}]
    monkeypatch.setenv("HMS_BUS_NKEY_SEED", seed)
    assert _roundtrip(f"{url}?{_stream()}") == [{"n": 1}]


def test_nats_unknown_nkey_is_refused_with_what_to_check(nkey_server, password_server, nkey_user):
    seed, _ = nkey_user
    text, took = _refused(f"nats://127.0.0.1:{password_server.port}", nkey_seed=seed)
    assert took < 5
    assert text.endswith("(Authorization Violation): check the NKey seed you passed")
    assert seed not in text


def test_nats_malformed_nkey_seed_says_the_credentials_cannot_be_used(nkey_server):
    text, took = _refused(f"nats://127.0.0.1:{nkey_server.port}", nkey_seed="SUNOTASEED1234")
    assert took < 5
    assert text.startswith(f"cannot log in to NATS at nats://127.0.0.1:{nkey_server.port}: ")
    assert text.endswith("check the NKey seed you passed") and "SUNOTASEED1234" not in text


def test_nats_creds_file_logs_in_to_an_operator_mode_server(operator, monkeypatch):
    url = f"nats://127.0.0.1:{operator['server'].port}"
    assert _roundtrip(f"{url}?{_stream()}&creds={operator['creds']}") == [{"n": 1}]
    monkeypatch.setenv("HMS_BUS_CREDS", operator["creds"])
    assert _roundtrip(f"{url}?{_stream()}") == [{"n": 1}]


def test_nats_creds_file_of_an_unknown_account_is_refused(operator):
    url = f"nats://127.0.0.1:{operator['server'].port}"
    text, took = _refused(url, creds=operator["stranger"])
    assert took < 5
    assert text.endswith(f"check the .creds file {operator['stranger']!r} you passed")


def test_nats_creds_file_that_is_refused_names_the_file(password_server, tmp_path, nkey_user):
    seed, _ = nkey_user
    creds = tmp_path / "hms.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln"
        "\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
    text, took = _refused(f"nats://127.0.0.1:{password_server.port}?creds={creds}")
    assert took < 5
    assert "refused the credentials (Authorization Violation): check the .creds file" in text
    assert str(creds) in text and seed not in text


# -- TLS -----------------------------------------------------------------------------------------


def test_nats_tls_with_the_test_ca_works(tls_server, pki):
    url = f"tls://alice:{PASSWORD}@127.0.0.1:{tls_server.port}?ca={pki['ca']}.pem&{_stream()}"
    assert _roundtrip(url) == [{"n": 1}]


def test_nats_tls_to_a_plaintext_server_is_refused(password_server, pki):
    for url in (
        f"tls://alice:{PASSWORD}@127.0.0.1:{password_server.port}",
        f"nats://alice:{PASSWORD}@127.0.0.1:{password_server.port}?ca={pki['ca']}.pem",
    ):
        text, took = _refused(url)
        assert took < 5
        assert "does not offer TLS" in text and "refusing to connect in plaintext" in text
        assert PASSWORD not in text


def test_nats_tls_with_a_ca_that_did_not_sign_the_server_fails_with_a_tls_message(tls_server, pki):
    url = f"tls://alice:{PASSWORD}@127.0.0.1:{tls_server.port}?ca={pki['other-ca']}.pem"
    text, took = _refused(url)
    assert took < 5
    assert text.startswith(f"TLS with NATS at tls://alice:***@127.0.0.1:{tls_server.port}?ca=")
    assert "certificate verify failed" in text and "give ca=" in text


def test_nats_client_certificate_for_a_server_that_checks_clients(mtls_server, pki):
    url = f"tls://127.0.0.1:{mtls_server.port}?ca={pki['ca']}.pem&{_stream()}"
    client = (pki["client"] + ".pem", pki["client"] + ".key")
    assert _roundtrip(url, cert=client[0], key=client[1]) == [{"n": 1}]
    text, took = _refused(url)
    assert took < 5 and "TLS" in text


# -- how the settings are gathered (no server) -----------------------------------------------------


def _gather(url: str, env: dict | None = None, **kwargs):
    base, _, query = url.partition("?")
    options = dict(item.split("=", 1) for item in query.split("&") if item)
    servers = base.split(",")
    sec = security_from(servers, options, kwargs, url=url, env=env or {})
    return sec, options


def test_nats_security_keywords_win_over_the_url_and_the_url_over_the_environment():
    sec, _ = _gather("nats://u:p-url@h:4222", {"HMS_BUS_TOKEN": "tok-env"}, token="tok-kw")
    assert (sec.kind, sec.secrets["token"], sec.where) == ("token", "tok-kw", "you passed")
    sec, _ = _gather("nats://u:p-url@h:4222", {"HMS_BUS_TOKEN": "tok-env"})
    assert (sec.kind, sec.secrets["password"], sec.servers) == (
        "password",
        "p-url",
        ["nats://h:4222"],
    )
    sec, _ = _gather("nats://h:4222", {"HMS_BUS_TOKEN": "tok-env"})
    assert (sec.kind, sec.where) == ("token", "in HMS_BUS_TOKEN")


def test_nats_security_options_leave_the_other_options_alone(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    sec, rest = _gather(f"nats://h:4222?stream=S&ca={ca}&tls=true")
    assert rest == {"stream": "S"} and sec.tls and sec.ca == str(ca)
    sec, rest = _gather("nats://h:4222?tls=false&prefix=p")
    assert rest == {"prefix": "p"} and not sec.tls


def test_nats_url_credentials_are_taken_out_of_every_server():
    sec, _ = _gather("nats://u:pw@a:1,nats://u:pw@b:2")
    assert sec.servers == ["nats://a:1", "nats://b:2"]
    with pytest.raises(ValueError, match="carry different credentials"):
        _gather("nats://u:pw@a:1,nats://v:pw@b:2")


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("nats://h?token=t1&password=p1&user=u", {}, r"credentials of 2 kinds \(password, token\)"),
        ("nats://h", {"password": "p"}, "needs a user"),
        ("nats://h", {"user": "alice"}, "needs password="),
        ("nats://h?creds=/no/such.creds", {}, r"creds='/no/such.creds': no such file"),
        ("nats://h?ca=/no/ca.pem", {}, r"ca='/no/ca.pem': no such file"),
        ("nats://h?key=/k.pem", {}, "needs cert="),
        ("nats://h?tls=maybe", {}, "use tls=true or tls=false"),
        ("nats://h?token=a1b2", {"token": "c3d4"}, "token is given twice"),
    ],
)
def test_nats_bad_security_settings_say_what_to_do(url, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        _gather(url, **kwargs)
    for secret in ("t1", "p1", "a1b2", "c3d4"):
        assert f"={secret}" not in str(info.value)


def test_nats_backend_refuses_unknown_security_keywords():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['pasword'\].* password, token"):
        nats_backend("nats://127.0.0.1:1", pasword="x")
