from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from node.core.config import (Address, ConfigError, ExplorerConfig, IdentityConfig, LimitsConfig, MetricsConfig,
                              MqttConfig, NodeConfig, TlsConfig, VerifyConfig, config_template, load_config,
                              parse_address)

MINIMAL = textwrap.dedent("""\
    department = "housing-registry"
    key_file = "node.key"
    data_dir = "data"
    peer_listen = "127.0.0.1:7001"
    client_listen = "127.0.0.1:7101"
    tls = { ca = "tls/ca.crt", cert = "tls/node.crt", key = "tls/node.key" }

    [[chains]]
    id = "catalog"
    genesis = "genesis/catalog.json"
""")


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str) -> NodeConfig:
    return load_config(write(tmp_path, text))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


def replace_line(text: str, key: str, new: str | None) -> str:
    """Replace (or with None delete) the first `key = ...` line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"{re.escape(key)}\s*=", line):
            if new is None:
                del lines[i]
            else:
                lines[i] = new
            return "\n".join(lines) + "\n"
    raise AssertionError(key)


def test_config_minimal_defaults_and_relative_paths(tmp_path) -> None:
    config = load_text(tmp_path, MINIMAL)
    base = tmp_path.resolve()
    assert config.department == "housing-registry"
    assert config.display_name == "housing-registry"
    assert config.key_file == base / "node.key"
    assert config.data_dir == base / "data"
    assert config.peer_listen == Address("127.0.0.1", 7001)
    assert config.client_listen == Address("127.0.0.1", 7101)
    assert config.tls == TlsConfig(ca=base / "tls/ca.crt", cert=base / "tls/node.crt", key=base / "tls/node.key")
    assert config.tick_ms == 10 and config.log_level == "INFO"
    assert config.limits == LimitsConfig() and config.limits.message_bytes_max == 4 * 1024 * 1024
    assert config.mqtt is None
    assert config.path == base / "node.toml"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tick_ms = 5  # type: ignore[misc]


def test_config_relative_genesis_resolves_against_config_dir_not_cwd(tmp_path, monkeypatch) -> None:
    etc = tmp_path / "etc" / "govchain"
    etc.mkdir(parents=True)
    text = MINIMAL + '\n[[chains]]\nid = "item"\ngenesis = "/srv/genesis/item.json"\n' \
                     '\n[[chains]]\nid = "authz"\ngenesis = "../shared/authz.json"\n'
    path = write(etc, text)
    monkeypatch.chdir(tmp_path)  # a different working directory must not matter
    config = load_config("etc/govchain/node.toml")
    base = etc.resolve()
    assert config.chain("catalog").genesis == base / "genesis" / "catalog.json"
    assert config.chain("item").genesis == Path("/srv/genesis/item.json")
    assert config.chain("authz").genesis == base / "../shared/authz.json"
    assert [c.id for c in config.chains] == ["catalog", "item", "authz"]
    assert config.key_file == base / "node.key"
    assert path.exists()


def test_config_full_file(tmp_path) -> None:
    text = MINIMAL + textwrap.dedent("""\
        [limits]
        message_bytes_max = 1048576
        mempool_txs_max = 5000
        concurrent_rpcs_max = 64
        stream_queue_max = 256

        [mqtt]
        host = "broker.internal"
        port = 8883
        topic_prefix = "gov/events"
        client_id = "housing-1"
        queue_max = 100
    """)
    text = replace_line(text, "peer_listen", 'peer_listen = "0.0.0.0:7001"\n'
                                             'tick_ms = 5\nlog_level = "debug"\ndisplay_name = "Housing Registry"')
    text = replace_line(text, "client_listen", 'client_listen = "[::1]:8001"')
    config = load_text(tmp_path, text)
    assert config.client_listen == Address("::1", 8001) and str(config.client_listen) == "[::1]:8001"
    assert config.tick_ms == 5 and config.log_level == "DEBUG" and config.display_name == "Housing Registry"
    assert config.limits == LimitsConfig(message_bytes_max=1048576, mempool_txs_max=5000, concurrent_rpcs_max=64,
                                         stream_queue_max=256)
    assert config.mqtt == MqttConfig(host="broker.internal", port=8883, topic_prefix="gov/events",
                                     client_id="housing-1", queue_max=100)


def test_config_mqtt_defaults(tmp_path) -> None:
    config = load_text(tmp_path, MINIMAL + '\n[mqtt]\nhost = "127.0.0.1"\n')
    assert config.mqtt == MqttConfig(host="127.0.0.1", port=1883, topic_prefix="govchain", client_id=None)


@pytest.mark.parametrize("key", ["department", "key_file", "data_dir", "peer_listen", "client_listen"])
def test_config_missing_required_key(tmp_path, key) -> None:
    message = error_of(tmp_path, replace_line(MINIMAL, key, None))
    assert message.startswith(f"{tmp_path / 'node.toml'}: {key} is missing; add {key} = ")


def test_config_missing_chains(tmp_path) -> None:
    text = MINIMAL.split("[[chains]]")[0]
    assert "chains is missing; add chains = one or more [[chains]] tables" in error_of(tmp_path, text)
    assert "chains must be one or more [[chains]] tables" in error_of(tmp_path, text + "chains = []\n")


@pytest.mark.parametrize("key", ["id", "genesis"])
def test_config_chain_missing_key(tmp_path, key) -> None:
    text = MINIMAL.replace(f'{key} = ', f'# {key} = ')
    assert f"[[chains]] #1 {key} is missing" in error_of(tmp_path, text)


@pytest.mark.parametrize("line, expected", [
    ('department = "Housing Registry"', 'department must be a department id: lowercase letters, digits and \'-\', '
                                        '1-63 characters, not starting or ending with \'-\' (got "Housing Registry")'),
    ('department = "-housing"', 'department must be a department id: lowercase letters, digits and \'-\', '
                                '1-63 characters, not starting or ending with \'-\' (got "-housing")'),
    ("department = 7", "department must be a department id: lowercase letters, digits and '-', 1-63 characters, "
                       "not starting or ending with '-' (got 7)"),
    ('display_name = ""', 'display_name must be a non-empty string (got "")'),
    ("key_file = 5", 'key_file must be a non-empty path string, e.g. "node.key" (got 5)'),
    ('data_dir = ""', 'data_dir must be a non-empty path string, e.g. "data" (got "")'),
    ('tick_ms = "10"', 'tick_ms must be an integer between 1 and 1000 (got "10")'),
    ("tick_ms = 0", "tick_ms must be an integer between 1 and 1000 (got 0)"),
    ("tick_ms = 10.5", "tick_ms must be an integer between 1 and 1000 (got 10.5)"),
    ("tick_ms = true", "tick_ms must be an integer between 1 and 1000 (got true)"),
    ('log_level = "LOUD"', 'log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got "LOUD")'),
    ("limits = 5", "limits must be a table: write [limits] on its own line (got 5)"),
])
def test_config_bad_top_level_value(tmp_path, line, expected) -> None:
    key = line.split(" =")[0]
    text = replace_line(MINIMAL, key, line) if re.search(rf"^{key}\s*=", MINIMAL, re.M) else line + "\n" + MINIMAL
    message = error_of(tmp_path, text)
    assert message == f"{tmp_path / 'node.toml'}: {expected}"


@pytest.mark.parametrize("key, value, expected", [
    ("message_bytes_max", '"big"',
     '[limits] message_bytes_max must be an integer between 1024 and 67108864 (got "big")'),
    ("message_bytes_max", "1023", "[limits] message_bytes_max must be an integer between 1024 and 67108864 (got 1023)"),
    ("message_bytes_max", "67108865", "[limits] message_bytes_max must be an integer between 1024 and 67108864"),
    ("mempool_txs_max", "0", "[limits] mempool_txs_max must be an integer between 1 and 10000000 (got 0)"),
    ("concurrent_rpcs_max", "-1", "[limits] concurrent_rpcs_max must be an integer between 1 and 100000 (got -1)"),
    ("stream_queue_max", "[1]", "[limits] stream_queue_max must be an integer between 1 and 1000000 (got an array)"),
])
def test_config_bad_limit(tmp_path, key, value, expected) -> None:
    message = error_of(tmp_path, MINIMAL + f"\n[limits]\n{key} = {value}\n")
    assert message.startswith(f"{tmp_path / 'node.toml'}: {expected}")


@pytest.mark.parametrize("body, expected", [
    ("port = 1883", '[mqtt] host is missing; add host = "127.0.0.1" (or remove the [mqtt] table)'),
    ('host = ""', '[mqtt] host must be a host name or IP address (got "")'),
    ('host = "bad host"', '[mqtt] host must be a host name or IP address (got "bad host")'),
    ('host = "h"\nport = 0', "[mqtt] port must be an integer between 1 and 65535 (got 0)"),
    ('host = "h"\nport = "1883"', '[mqtt] port must be an integer between 1 and 65535 (got "1883")'),
    ('host = "h"\ntopic_prefix = "gov/#"', "[mqtt] topic_prefix must be MQTT topic levels"),
    ('host = "h"\ntopic_prefix = "/gov"', "[mqtt] topic_prefix must be MQTT topic levels"),
    ('host = "h"\nclient_id = "a b"', "[mqtt] client_id must be 1-128 of letters"),
    ('host = "h"\nqueue_max = 0', "[mqtt] queue_max must be an integer between 1 and 1000000 (got 0)"),
])
def test_config_bad_mqtt(tmp_path, body, expected) -> None:
    message = error_of(tmp_path, MINIMAL + f"\n[mqtt]\n{body}\n")
    assert message.startswith(f"{tmp_path / 'node.toml'}: {expected}")


def test_config_mqtt_not_a_table(tmp_path) -> None:
    assert 'mqtt must be a table: write [mqtt] on its own line (got "localhost")' in \
        error_of(tmp_path, 'mqtt = "localhost"\n' + MINIMAL)


@pytest.mark.parametrize("text, expected", [
    ('tick_msec = 5\n' + MINIMAL, 'unknown key "tick_msec"; did you mean "tick_ms"?'),
    ('colour = "blue"\n' + MINIMAL, 'unknown key "colour"; allowed keys: department, display_name'),
    (MINIMAL + 'genesis_file = "x"\n', 'unknown key "genesis_file" in [[chains]] #1; did you mean "genesis"?'),
    (MINIMAL + '\n[limits]\nmessage_bytes = 2048\n',
     'unknown key "message_bytes" in [limits]; did you mean "message_bytes_max"?'),
    (MINIMAL + '\n[mqtt]\nhost = "h"\nprefix = "x"\n', 'unknown key "prefix" in [mqtt]'),
    (MINIMAL + '\n[metrics]\nport = 1\n', 'unknown key "port" in [metrics]; allowed keys: listen'),
])
def test_config_unknown_key_is_an_error(tmp_path, text, expected) -> None:
    assert expected in error_of(tmp_path, text)


@pytest.mark.parametrize("value, reason", [
    ('"127.0.0.1"', 'must be "host:port"'),
    ('":7001"', 'must be "host:port"'),
    ('"127.0.0.1:"', "port '' is not a number"),
    ('"127.0.0.1:http"', "port 'http' is not a number"),
    ('"127.0.0.1:70000"', "port 70000 is not in 0..65535"),
    ('"::1:7001"', "IPv6 hosts must be in brackets"),
    ('"[::g]:7001"', "is not an IPv6 address"),
    ('"[::1]7001"', 'must be "[ipv6]:port"'),
    ('"bad_host!:7001"', "is not a valid host name or IPv4 address"),
    ("7001", 'must be a string "host:port"'),
])
@pytest.mark.parametrize("key", ["peer_listen", "client_listen"])
def test_config_bad_address(tmp_path, key, value, reason) -> None:
    text = replace_line(MINIMAL, key, f"{key} = {value}")
    message = error_of(tmp_path, text)
    assert message.startswith(f'{tmp_path / "node.toml"}: {key} must be "host:port", e.g. "127.0.0.1:7001": ')
    assert reason in message


def test_config_parse_address_forms() -> None:
    assert parse_address("node-1.gov.example:443") == Address("node-1.gov.example", 443)
    assert parse_address("[2001:db8::1]:7001") == Address("2001:db8::1", 7001)
    assert parse_address("127.0.0.1:0") == Address("127.0.0.1", 0)
    with pytest.raises(ValueError, match="not in 1..65535"):
        parse_address("127.0.0.1:0", allow_port_zero=False)


@pytest.mark.parametrize("chain, expected", [
    ('id = "Catalog"\ngenesis = "g.json"', "[[chains]] #2 id must be a chain id: 1-32 of lowercase letters"),
    ('id = "catalog"\ngenesis = "g.json"', '[[chains]] #2 id "catalog" appears twice'),
    ('id = "item"\ngenesis = 3', "[[chains]] #2 genesis must be a non-empty path string"),
])
def test_config_bad_chain(tmp_path, chain, expected) -> None:
    assert expected in error_of(tmp_path, MINIMAL + f"\n[[chains]]\n{chain}\n")


def test_config_chains_must_be_tables(tmp_path) -> None:
    text = MINIMAL.split("[[chains]]")[0] + 'chains = ["catalog"]\n'
    assert '[[chains]] #1 must be a table (got "catalog")' in error_of(tmp_path, text)


def test_config_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    assert "not valid TOML" in error_of(tmp_path, 'department = "x\n')
    write(tmp_path, "x", name="bin.toml").write_bytes(b"department = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bin.toml")


def test_config_template_round_trips(tmp_path) -> None:
    text = config_template("tax-office", display_name='Tax "Office"', peer_listen="0.0.0.0:7002",
                           client_listen="0.0.0.0:8002", chains={"catalog": "genesis/catalog.json",
                                                                 "authz": "/etc/govchain/authz.json"},
                           tick_ms=20, mqtt=MqttConfig(host="127.0.0.1", port=1884, client_id="tax-1"))
    assert text.startswith("# govchain node configuration")
    config = load_text(tmp_path, text)
    assert config.department == "tax-office" and config.display_name == 'Tax "Office"'
    assert config.client_listen == Address("0.0.0.0", 8002) and config.tick_ms == 20
    assert config.chain("catalog").genesis == tmp_path.resolve() / "genesis" / "catalog.json"
    assert config.chain("authz").genesis == Path("/etc/govchain/authz.json")
    assert config.mqtt == MqttConfig(host="127.0.0.1", port=1884, client_id="tax-1")
    # without mqtt the table is present but commented out
    plain = config_template("tax-office")
    assert "# [mqtt]" in plain and load_text(tmp_path, plain).mqtt is None


def test_config_template_validates_its_arguments() -> None:
    with pytest.raises(ConfigError, match="department must be"):
        config_template("Tax Office")
    with pytest.raises(ConfigError, match='peer_listen must be "host:port"'):
        config_template("tax-office", peer_listen="nowhere")


def test_config_tls_insecure_and_client_certificates(tmp_path) -> None:
    insecure = load_text(tmp_path, replace_line(MINIMAL, "tls", "tls = { insecure = true }"))
    assert insecure.tls == TlsConfig(insecure=True)
    strict = load_text(tmp_path, MINIMAL.replace('key = "tls/node.key"', 'key = "k", require_client_cert = true'))
    assert strict.tls.require_client_cert and not strict.tls.insecure


@pytest.mark.parametrize("tls, expected", [
    (None, "the [tls] table is missing; add [tls] with ca, cert and key"),
    ('ca = "ca.crt"\ncert = "n.crt"', "[tls] key is missing; add key = "),
    ('ca = "ca.crt"\ncert = "n.crt"\nkey = "n.key"\ncerts = "x"', 'unknown key "certs" in [tls]; did you mean "cert"?'),
    ('insecure = "yes"', '[tls] insecure must be true or false (got "yes")'),
    ('insecure = true\nca = "ca.crt"', "[tls] ca has no effect with insecure = true"),
    ('insecure = true\nrequire_client_cert = true', "[tls] require_client_cert has no effect with insecure = true"),
])
def test_config_bad_tls(tmp_path, tls, expected) -> None:
    text = replace_line(MINIMAL, "tls", None) + (f"[tls]\n{tls}\n" if tls else "")
    assert expected in error_of(tmp_path, text)


@pytest.mark.parametrize("peer, client", [
    ("127.0.0.1:7001", "127.0.0.1:7001"),
    ("0.0.0.0:7001", "127.0.0.1:7001"),
    ("127.0.0.1:7001", "[::]:7001"),
])
def test_config_ports_must_differ(tmp_path, peer, client) -> None:
    text = replace_line(replace_line(MINIMAL, "peer_listen", f'peer_listen = "{peer}"'),
                        "client_listen", f'client_listen = "{client}"')
    message = error_of(tmp_path, text)
    assert f"client_listen ({client}) must differ from peer_listen ({peer})" in message
    assert "must differ from peer_listen" in message and "give clients a port of their own" in message


def test_config_metrics(tmp_path) -> None:
    assert load_text(tmp_path, MINIMAL).metrics is None  # off by default
    config = load_text(tmp_path, MINIMAL + '\n[metrics]\nlisten = "0.0.0.0:9101"\n')
    assert config.metrics == MetricsConfig(listen=Address("0.0.0.0", 9101))
    assert "[metrics] listen is missing" in error_of(tmp_path, MINIMAL + "\n[metrics]\n")
    for taken in ("127.0.0.1:7001", "0.0.0.0:7101"):
        assert (f"[metrics] listen ({taken}) must differ from peer_listen and client_listen"
                in error_of(tmp_path, MINIMAL + f'\n[metrics]\nlisten = "{taken}"\n'))
    assert load_text(tmp_path, config_template("tax-office", metrics_listen="127.0.0.1:9102")).metrics == \
        MetricsConfig(listen=Address("127.0.0.1", 9102))
    plain = config_template("tax-office")
    assert "# [metrics]" in plain and load_text(tmp_path, plain).metrics is None


def test_config_explorer(tmp_path) -> None:
    assert load_text(tmp_path, MINIMAL).explorer is None  # off by default
    config = load_text(tmp_path, MINIMAL + '\n[explorer]\nlisten = "0.0.0.0:8101"\n')
    assert config.explorer == ExplorerConfig(listen=Address("0.0.0.0", 8101))
    assert "[explorer] listen is missing" in error_of(tmp_path, MINIMAL + "\n[explorer]\n")
    for taken in ("127.0.0.1:7001", "0.0.0.0:7101", "127.0.0.1:9101"):
        assert (f"[explorer] listen ({taken}) must differ from peer_listen, client_listen and [metrics] listen"
                in error_of(tmp_path, MINIMAL + f'\n[metrics]\nlisten = "127.0.0.1:9101"\n'
                                                f'[explorer]\nlisten = "{taken}"\n'))
    assert load_text(tmp_path, config_template("tax-office", explorer_listen="127.0.0.1:8102")).explorer == \
        ExplorerConfig(listen=Address("127.0.0.1", 8102))
    plain = config_template("tax-office")
    assert "# [explorer]" in plain and load_text(tmp_path, plain).explorer is None


STRICT_TLS = MINIMAL.replace('key = "tls/node.key"', 'key = "tls/node.key", require_client_cert = true')


def test_config_identity_endpoint(tmp_path) -> None:
    config = load_text(tmp_path, STRICT_TLS + '\n[identity]\noprf_key_file = "oprf.key"\n'
                                              'windows = ["civil-window-1", "civil-window-1", "tax-window"]\n'
                                              'burst = 5\n')
    assert config.identity == IdentityConfig(oprf_key_file=tmp_path / "oprf.key",
                                             windows=("civil-window-1", "tax-window"), rate_per_minute=60, burst=5)
    assert load_text(tmp_path, STRICT_TLS).identity is None


@pytest.mark.parametrize("base, identity, expected", [
    (MINIMAL, 'oprf_key_file = "k"\nwindows = ["w"]', "[identity] the subject-tag endpoint answers only windows "
                                                      "with a client certificate; set [tls] require_client_cert"),
    (STRICT_TLS, 'windows = ["w"]', "[identity] oprf_key_file is missing"),
    (STRICT_TLS, 'oprf_key_file = "k"', "[identity] windows is missing"),
    (STRICT_TLS, 'oprf_key_file = "k"\nwindows = []', "[identity] windows must be a non-empty array"),
    (STRICT_TLS, 'oprf_key_file = "k"\nwindows = ["a b"]', "[identity] windows must be a non-empty array"),
    (STRICT_TLS, 'oprf_key_file = "k"\nwindows = ["w"]\nrate = 5', 'unknown key "rate" in [identity]'),
    (STRICT_TLS, 'oprf_key_file = "k"\nwindows = ["w"]\nburst = 0', "[identity] burst must be an integer between 1"),
])
def test_config_bad_identity(tmp_path, base, identity, expected) -> None:
    assert expected in error_of(tmp_path, base + f"\n[identity]\n{identity}\n")


def test_config_verify_asks_the_identity_service_when_given_one(tmp_path) -> None:
    config = load_text(tmp_path, MINIMAL + '\n[verify]\nkey_file = "app.key"\nidentity = "10.0.0.3:7101"\n'
                                           'identity_cert = "tls/w.crt"\nidentity_key = "tls/w.key"\n')
    assert config.verify == VerifyConfig(key_file=tmp_path / "app.key", identity=Address("10.0.0.3", 7101),
                                         identity_cert=tmp_path / "tls/w.crt", identity_key=tmp_path / "tls/w.key")
    assert load_text(tmp_path, MINIMAL + '\n[verify]\nkey_file = "app.key"\n').verify.identity is None


@pytest.mark.parametrize("base, verify, expected", [
    (MINIMAL, 'identity = "10.0.0.3:7101"\nidentity_key = "w.key"', "[verify] identity_cert is missing"),
    (MINIMAL, 'identity = "nowhere"\nidentity_cert = "w.crt"\nidentity_key = "w.key"',
     '[verify] identity must be "host:port"'),
    (MINIMAL, 'identity_cert = "w.crt"', "[verify] identity_cert and identity_key go with identity"),
    (replace_line(MINIMAL, "tls", "tls = { insecure = true }"),
     'identity = "10.0.0.3:7101"\nidentity_cert = "w.crt"\nidentity_key = "w.key"',
     "[verify] identity is asked over TLS with a window certificate"),
])
def test_config_bad_verify_identity(tmp_path, base, verify, expected) -> None:
    assert expected in error_of(tmp_path, base + f'\n[verify]\nkey_file = "app.key"\n{verify}\n')
