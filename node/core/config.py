"""Node configuration: one TOML file per department node, read with tomllib
into frozen dataclasses.

Every bad, missing or unknown value raises ConfigError with a message that
names the file, the key, what is expected and what was found, e.g.::

    node.toml: [limits] message_bytes_max must be an integer between 1024 and 67108864 (got "big")

Unknown keys are errors (with a "did you mean" hint): a typo such as
``tick_msec`` must not silently fall back to a default.

``[tls]`` is required: the PEM files for both ports, or ``insecure = true``
for plaintext (docs/security.md). ``peer_listen`` and ``client_listen`` must
differ: each port has its own server.

``[[sources]]`` (optional) maps catalog items to the department's existing
data: a SQLite table or a CSV file (docs/design.md, "Data-source adapters").

Relative paths (``key_file``, ``data_dir``, ``[[chains]] genesis``, ``[tls]``, ``[[sources]] path``) resolve
against the directory of the config file, not the process's working
directory, so a node behaves the same under systemd, in a container and from
a shell.

This is the only module that knows how many milliseconds a tick is
(``tick_ms``); consensus counts ticks (see node.core.genesis.Genesis.replica_config).
"""
from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPARTMENT_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # a DNS label
CHAIN_ID_RE = re.compile(r"[a-z0-9-]{1,32}")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_TOPIC_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ITEM_RE = DEPARTMENT_RE  # catalog item ids have the shape of department ids, e.g. "household-registration"
FIELD_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # an item's field name, as requests name it
# A table or column name in the department's system: letters (any script), digits and '_', so it
# can be double-quoted in SQL without escaping (docs/design.md, "Data-source adapters").
COLUMN_RE = re.compile(r"[^\W\d]\w{0,127}")
SOURCE_KINDS = ("sqlite", "csv")

MIB = 1 << 20
TICK_MS_DEFAULT = 10
TICK_MS_RANGE = (1, 1000)
MESSAGE_BYTES_RANGE = (1024, 64 * MIB)


class ConfigError(ValueError):
    """The node configuration is invalid; the message names the key and the fix."""


# --------------------------------------------------------------------------- addresses

@dataclass(frozen=True)
class Address:
    """A "host:port" endpoint. IPv6 literals are written in brackets: "[::1]:7001"."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: object, *, allow_port_zero: bool = True) -> Address:
    """Parse "host:port" ("[v6]:port" for IPv6). Raises ValueError with the reason.

    Port 0 (let the OS pick) is accepted for listen addresses by default; it is
    what tests use. Addresses that peers dial should pass allow_port_zero=False.
    """
    if not isinstance(text, str):
        raise ValueError("must be a string \"host:port\"")
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1:close + 2] != ":":
            raise ValueError('must be "[ipv6]:port" when the host is an IPv6 literal')
        host, port_text = text[1:close], text[close + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError('must be "host:port", e.g. "127.0.0.1:7001"')
        if ":" in host:
            raise ValueError('IPv6 hosts must be in brackets, e.g. "[::1]:7001"')
        if not _HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"{host!r} is not a valid host name or IPv4 address")
    if not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"port {port} is not in {low}..65535")
    return Address(host, port)


# --------------------------------------------------------------------------- dataclasses

@dataclass(frozen=True, kw_only=True)
class ChainConfig:
    id: str
    genesis: Path  # absolute after load_config


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """Where one catalog item's data lives in the department's existing
    system, and which column holds each of the item's fields."""

    item: str
    kind: str  # one of SOURCE_KINDS
    path: Path  # absolute after load_config
    key_column: str  # the column holding the ID number
    fields: tuple[tuple[str, str], ...]  # (item field, column), as configured
    table: str | None = None  # sqlite only

    @property
    def columns(self) -> dict[str, str]:
        """item field -> column."""
        return dict(self.fields)


@dataclass(frozen=True, kw_only=True)
class LimitsConfig:
    message_bytes_max: int = 4 * MIB  # largest gRPC message sent or received
    mempool_txs_max: int = 4_000  # per chain: bounds queueing delay; excess load is refused (RESOURCE_EXHAUSTED)
    concurrent_rpcs_max: int = 1_000  # maximum_concurrent_rpcs of each port's server (two separate pools)
    client_streams_max: int = 64  # concurrent streams per client (certificate, else IP address) and per peer
    stream_queue_max: int = 1_024  # outbound messages buffered per peer stream


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str
    port: int = 1883
    topic_prefix: str = "govchain"
    client_id: str | None = None  # default: derived from department and pid
    queue_max: int = 10_000  # events buffered while the broker is away


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    """Prometheus metrics over plain HTTP on a port of their own (docs/operations.md)."""

    listen: Address


@dataclass(frozen=True, kw_only=True)
class ExplorerConfig:
    """The read-only explorer over plain HTTP on a port of its own (docs/design.md, "Explorer and audit page")."""

    listen: Address


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    """PEM files for both ports; insecure=True serves plaintext instead."""

    ca: Path | None = None  # the network CA: peers' and client certificates must chain to it
    cert: Path | None = None  # this department's certificate (`govchain tls cert --node-key`)
    key: Path | None = None
    require_client_cert: bool = False  # client port: only department applications with a certificate
    insecure: bool = False


@dataclass(frozen=True, kw_only=True)
class IdentityConfig:
    """The identity service's subject-tag endpoint (docs/design.md, "Subject tags (OPRF)")."""

    oprf_key_file: Path  # `govchain keys generate-oprf`
    windows: tuple[str, ...]  # client certificate names (common names) allowed to call Evaluate
    rate_per_minute: int = 60  # tokens added per minute, per client certificate
    burst: int = 20  # the bucket's size: calls a client may make at once


@dataclass(frozen=True, kw_only=True)
class CasesConfig:
    """The case driver (docs/design.md, "Service items and cases")."""

    key_file: Path  # the department's key with roles requester (queries) and provider (item-chain records)
    providers: tuple[tuple[str, str], ...]  # (department, client address of its node), sorted
    timeout_s: int = 30  # per verification query, and per transaction's commit


@dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    """The verification-query service (docs/design.md, "Verification queries")."""

    key_file: Path  # the department's key with role "provider" in the catalog: opens subjects, signs
    window_s: int = 120  # a request's time_ms may differ from this node's clock by at most this much
    commit_wait_s: int = 20  # how long a query waits for its log entry to commit
    # The identity service's client address, and this node's window certificate for it (issued by the
    # network CA, named in that node's [identity] windows): under a standing agreement the node checks
    # each tag with the service itself. None: it cannot tell a made-up tag.
    identity: Address | None = None
    identity_cert: Path | None = None
    identity_key: Path | None = None


@dataclass(frozen=True, kw_only=True)
class OfferConfig:
    """A proactive offer (docs/design.md, "Push notices and offers"): when a
    transaction `contract`.`method` commits OK on `chain` and its payload has
    the `where` field values, push the notice `notice` (a text id the
    citizen's app shows) to the subject tag in payload field `tag_field`."""

    id: str
    chain: str
    contract: str
    method: str
    notice: str
    tag_field: str = "tag"
    where: tuple[tuple[str, str | int | bool], ...] = ()


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    path: Path | None  # the file this came from (None when built in code)
    department: str
    display_name: str
    key_file: Path
    data_dir: Path
    peer_listen: Address
    client_listen: Address  # must differ from peer_listen: one server per port
    tls: TlsConfig
    tick_ms: int = TICK_MS_DEFAULT
    log_level: str = "INFO"
    chains: tuple[ChainConfig, ...] = ()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    mqtt: MqttConfig | None = None
    identity: IdentityConfig | None = None  # serve govchain.v1.Identity on the client port
    sources: tuple[SourceConfig, ...] = ()
    verify: VerifyConfig | None = None  # with sources: serve govchain.v1.Verification
    metrics: MetricsConfig | None = None  # off unless [metrics] listen is set
    explorer: ExplorerConfig | None = None  # off unless [explorer] listen is set
    offers: tuple[OfferConfig, ...] = ()  # [[offers]]: need [mqtt] and the authn chain
    cases: CasesConfig | None = None  # serve govchain.v1.Cases: drive this department's cases

    def chain(self, chain_id: str) -> ChainConfig:
        for chain in self.chains:
            if chain.id == chain_id:
                return chain
        raise KeyError(chain_id)


# --------------------------------------------------------------------------- loading

_TOP_KEYS = ("department", "display_name", "key_file", "data_dir", "peer_listen", "client_listen",
             "tick_ms", "log_level", "chains", "limits", "mqtt", "tls", "identity", "sources", "verify", "metrics",
             "explorer", "offers", "cases")
_CHAIN_KEYS = ("id", "genesis")
_LIMIT_RANGES: dict[str, tuple[int, int]] = {
    "message_bytes_max": MESSAGE_BYTES_RANGE,
    "mempool_txs_max": (1, 10_000_000),
    "concurrent_rpcs_max": (1, 100_000),
    "client_streams_max": (1, 100_000),
    "stream_queue_max": (1, 1_000_000),
}
_MQTT_KEYS = ("host", "port", "topic_prefix", "client_id", "queue_max")
_TLS_KEYS = ("ca", "cert", "key", "require_client_cert", "insecure")
_IDENTITY_KEYS = ("oprf_key_file", "windows", "rate_per_minute", "burst")
_CERT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERIFY_KEYS = ("key_file", "window_s", "commit_wait_s", "identity", "identity_cert", "identity_key")
_CASES_KEYS = ("key_file", "providers", "timeout_s")
_OFFER_KEYS = ("id", "chain", "contract", "method", "notice", "tag_field", "where")
_OFFER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_OFFER_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SOURCE_KEYS = ("item", "kind", "path", "table", "key_column", "fields")
_COLUMN_RULE = "a column name: letters, digits and '_', not starting with a digit, at most 128 characters"
_WILDCARD_HOSTS = ("0.0.0.0", "::")


def show_value(value: object, *, table: str = "a table", array: str = "an array") -> str:
    """How a bad value appears in messages: scalars as JSON (quoted strings,
    true/false), containers by name, cut to 80 characters. The genesis
    loader names containers in JSON's words."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = json.dumps(value)
    elif isinstance(value, dict):
        text = table
    elif isinstance(value, list):
        text = array
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


class _Reader:
    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}{message}")

    def check_keys(self, table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"allowed keys: {', '.join(allowed)}"
                place = f" in {where.strip()}" if where else ""
                raise ConfigError(f'{self.source}: unknown key "{key}"{place}; {hint}')

    def required(self, table: Mapping[str, Any], key: str, where: str, what: str) -> Any:
        if key not in table:
            raise self.fail(where, f"{key} is missing; add {key} = {what}")
        return table[key]

    def integer(self, table: Mapping[str, Any], key: str, where: str, low: int, high: int, default: int) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(where, f"{key} must be an integer between {low} and {high} (got {show_value(value)})")
        return value

    def string(self, table: Mapping[str, Any], key: str, where: str, *, pattern: re.Pattern[str] | None = None,
               rule: str = "a non-empty string", default: str | None = None, required_what: str = "") -> str:
        if default is None:
            value = self.required(table, key, where, required_what or '"..."')
        else:
            value = table.get(key, default)
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
            raise self.fail(where, f"{key} must be {rule} (got {show_value(value)})")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, where: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(where, f"{key} must be true or false (got {show_value(value)})")
        return value

    def path(self, table: Mapping[str, Any], key: str, where: str, example: str) -> Path:
        value = self.required(table, key, where, f'"{example}"')
        if not isinstance(value, str) or not value or "\0" in value:
            raise self.fail(where, f"{key} must be a non-empty path string, e.g. \"{example}\" (got {show_value(value)})")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def address(self, table: Mapping[str, Any], key: str, where: str, default: Address | None = None) -> Address:
        if default is not None and key not in table:
            return default
        value = self.required(table, key, where, '"127.0.0.1:7001"')
        try:
            return parse_address(value)
        except ValueError as exc:
            raise self.fail(where, f'{key} must be "host:port", e.g. "127.0.0.1:7001": {exc} '
                                   f"(got {show_value(value)})") from None

    def array_of_tables(self, raw: object, name: str, allowed: Iterable[str], what: str):
        """(where, table) for each [[name]] table of a non-empty array, each
        checked to be a table with only `allowed` keys."""
        if not isinstance(raw, list) or not raw:
            raise self.fail("", f"{name} must be one or more [[{name}]] tables, each with {what} (got {show_value(raw)})")
        for number, table in enumerate(raw, start=1):
            where = f"[[{name}]] #{number} "
            if not isinstance(table, dict):
                raise self.fail(where, f"must be a table (got {show_value(table)})")
            self.check_keys(table, allowed, where)
            yield where, table

    def table(self, table: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
        value = table.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.fail("", f"{key} must be a table: write [{key}] on its own line (got {show_value(value)})")
        return value


def load_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Read and validate a node config file. Raises ConfigError."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: the file is not UTF-8") from None
    return parse_config(data, source=str(path), base_dir=path.resolve().parent, path=path.resolve())


def parse_config(data: Mapping[str, Any], *, source: str, base_dir: Path, path: Path | None = None) -> NodeConfig:
    """Validate an already-parsed TOML document (used by load_config and tests)."""
    r = _Reader(source, base_dir)
    r.check_keys(data, _TOP_KEYS, "")
    department = r.string(data, "department", "", pattern=DEPARTMENT_RE,
                          rule="a department id: lowercase letters, digits and '-', 1-63 characters, "
                               "not starting or ending with '-'",
                          required_what='"housing-registry"')
    display_name = r.string(data, "display_name", "", default=department,
                            rule="a non-empty string")
    key_file = r.path(data, "key_file", "", "node.key")
    data_dir = r.path(data, "data_dir", "", "data")
    peer_listen = r.address(data, "peer_listen", "")
    client_listen = r.address(data, "client_listen", "")
    if _same_port(client_listen, peer_listen):
        raise r.fail("", f"client_listen ({client_listen}) must differ from peer_listen ({peer_listen}): the peer "
                         f"port serves validators only; give clients a port of their own")
    tick_ms = r.integer(data, "tick_ms", "", *TICK_MS_RANGE, TICK_MS_DEFAULT)
    log_level_raw = data.get("log_level", "INFO")
    if not isinstance(log_level_raw, str) or log_level_raw.upper() not in LOG_LEVELS:
        raise r.fail("", f"log_level must be one of {', '.join(LOG_LEVELS)} (got {show_value(log_level_raw)})")
    log_level = log_level_raw.upper()

    chains_raw = r.required(data, "chains", "", 'one or more [[chains]] tables with id and genesis')
    chains: list[ChainConfig] = []
    for where, chain_raw in r.array_of_tables(chains_raw, "chains", _CHAIN_KEYS,
                                              'id = "..." and genesis = "path/to/genesis.json"'):
        chain_id = r.string(chain_raw, "id", where, pattern=CHAIN_ID_RE,
                            rule="a chain id: 1-32 of lowercase letters, digits and '-'",
                            required_what='"catalog"')
        if any(c.id == chain_id for c in chains):
            raise r.fail(where, f'id "{chain_id}" appears twice; each chain may be listed once')
        chains.append(ChainConfig(id=chain_id, genesis=r.path(chain_raw, "genesis", where,
                                                               f"genesis/{chain_id}.json")))

    limits_raw = r.table(data, "limits") or {}
    r.check_keys(limits_raw, _LIMIT_RANGES, "[limits]")
    defaults = LimitsConfig()
    limits = LimitsConfig(**{
        key: r.integer(limits_raw, key, "[limits] ", low, high, getattr(defaults, key))
        for key, (low, high) in _LIMIT_RANGES.items()
    })

    mqtt: MqttConfig | None = None
    mqtt_raw = r.table(data, "mqtt")
    if mqtt_raw is not None:
        where = "[mqtt] "
        r.check_keys(mqtt_raw, _MQTT_KEYS, "[mqtt]")
        host = r.string(mqtt_raw, "host", where, required_what='"127.0.0.1" (or remove the [mqtt] table)',
                        rule="a host name or IP address")
        if not _HOSTNAME_RE.fullmatch(host):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise r.fail(where, f"host must be a host name or IP address (got {show_value(host)})") from None
        mqtt_defaults = MqttConfig(host=host)
        client_id = mqtt_raw.get("client_id")
        if client_id is not None and (not isinstance(client_id, str) or not _CLIENT_ID_RE.fullmatch(client_id)):
            raise r.fail(where, f"client_id must be 1-128 of letters, digits, '_', '.', ':' and '-' "
                                f"(got {show_value(client_id)})")
        mqtt = MqttConfig(
            host=host,
            port=r.integer(mqtt_raw, "port", where, 1, 65535, mqtt_defaults.port),
            topic_prefix=r.string(mqtt_raw, "topic_prefix", where, pattern=_TOPIC_PREFIX_RE,
                                  default=mqtt_defaults.topic_prefix,
                                  rule="MQTT topic levels separated by '/', without wildcards "
                                       "(letters, digits, '_', '.', '-'), e.g. \"govchain\""),
            client_id=client_id,
            queue_max=r.integer(mqtt_raw, "queue_max", where, 1, 1_000_000, mqtt_defaults.queue_max),
        )

    tls = _tls(r, r.table(data, "tls"))
    return NodeConfig(path=path, department=department, display_name=display_name, key_file=key_file,
                      data_dir=data_dir, peer_listen=peer_listen, client_listen=client_listen,
                      tls=tls, tick_ms=tick_ms, log_level=log_level,
                      chains=tuple(chains), limits=limits, mqtt=mqtt,
                      identity=_identity(r, r.table(data, "identity"), tls),
                      sources=_sources(r, data.get("sources")), verify=_verify(r, r.table(data, "verify"), tls),
                      metrics=(metrics := _metrics(r, r.table(data, "metrics"), peer_listen, client_listen)),
                      explorer=_explorer(r, r.table(data, "explorer"), peer_listen, client_listen,
                                         *([metrics.listen] if metrics else [])),
                      offers=_offers(r, data.get("offers"), mqtt, chains), cases=_cases(r, r.table(data, "cases")))


def _same_port(a: Address, b: Address) -> bool:
    return a.port == b.port != 0 and (a.host == b.host or bool({a.host, b.host} & set(_WILDCARD_HOSTS)))


def _own_port(r: _Reader, raw: Mapping[str, Any], table: str, taken: tuple[Address, ...], others: str) -> Address:
    r.check_keys(raw, ("listen",), f"[{table}]")
    listen = r.address(raw, "listen", f"[{table}] ")
    for other in taken:
        if _same_port(listen, other):
            raise r.fail(f"[{table}] ", f"listen ({listen}) must differ from {others}")
    return listen


def _metrics(r: _Reader, raw: Mapping[str, Any] | None, *taken: Address) -> MetricsConfig | None:
    if raw is None:
        return None
    return MetricsConfig(listen=_own_port(r, raw, "metrics", taken, "peer_listen and client_listen"))


def _explorer(r: _Reader, raw: Mapping[str, Any] | None, *taken: Address) -> ExplorerConfig | None:
    if raw is None:
        return None
    return ExplorerConfig(listen=_own_port(r, raw, "explorer", taken,
                                           "peer_listen, client_listen and [metrics] listen"))


def _offers(r: _Reader, raw: object, mqtt: MqttConfig | None, chains: list[ChainConfig]
            ) -> tuple[OfferConfig, ...]:
    if raw is None:
        return ()
    served = [c.id for c in chains]
    offers: list[OfferConfig] = []
    name_rule = "a name: letters, digits and '_', not starting with a digit, at most 64 characters"
    for where, table in r.array_of_tables(raw, "offers", _OFFER_KEYS,
                                          'id, chain, contract, method and notice (docs/design.md, '
                                          '"Push notices and offers")'):
        if mqtt is None:
            raise r.fail(where, "offers are pushed over MQTT: add an [mqtt] table")
        if "authn" not in served:
            raise r.fail(where, "an offer goes to the app key the authn chain binds to the subject tag: "
                                "add the authn chain to [[chains]]")
        offer_id = r.string(table, "id", where, pattern=_OFFER_ID_RE, required_what='"unemployment-benefit"',
                            rule="1-64 of letters, digits, '.', '_', ':', '-'")
        if any(o.id == offer_id for o in offers):
            raise r.fail(where, f'id "{offer_id}" appears twice; each offer needs its own id')
        chain = r.string(table, "chain", where, pattern=CHAIN_ID_RE, required_what='"cert"', rule="a chain id")
        if chain not in served:
            raise r.fail(where, f'chain "{chain}" is not one of this node\'s [[chains]] ({", ".join(served)})')
        matches = r.table(table, "where") or {}
        for name, value in matches.items():
            if not _OFFER_NAME_RE.fullmatch(name) or isinstance(value, float) or not isinstance(
                    value, (str, int, bool)):
                raise r.fail(where, f"where.{name} must be a field name equal to a string, integer or boolean "
                                    f"(got {show_value(value)})")
        offers.append(OfferConfig(
            id=offer_id, chain=chain,
            contract=r.string(table, "contract", where, pattern=_OFFER_NAME_RE, required_what='"cert"',
                              rule=name_rule),
            method=r.string(table, "method", where, pattern=_OFFER_NAME_RE, required_what='"issue"',
                            rule=name_rule),
            notice=r.string(table, "notice", where, pattern=_OFFER_ID_RE, required_what='"unemployment-benefit.apply"',
                            rule="a notice text id: 1-64 of letters, digits, '.', '_', ':', '-'"),
            tag_field=r.string(table, "tag_field", where, pattern=_OFFER_NAME_RE, default="tag", rule=name_rule),
            where=tuple(sorted(matches.items()))))
    return tuple(offers)


def _verify(r: _Reader, raw: Mapping[str, Any] | None, tls: TlsConfig) -> VerifyConfig | None:
    if raw is None:
        return None
    where = "[verify] "
    r.check_keys(raw, _VERIFY_KEYS, "[verify]")
    defaults = VerifyConfig(key_file=Path())
    identity = cert = key = None
    if "identity" in raw:
        if tls.insecure:
            raise r.fail(where, "identity is asked over TLS with a window certificate; it cannot be used with [tls] "
                                "insecure = true")
        identity = r.address(raw, "identity", where)
        cert = r.path(raw, "identity_cert", where, "tls/verify-window.crt")
        key = r.path(raw, "identity_key", where, "tls/verify-window.key")
    elif "identity_cert" in raw or "identity_key" in raw:
        raise r.fail(where, 'identity_cert and identity_key go with identity = "host:port" (the identity '
                            "service's client address)")
    return VerifyConfig(key_file=r.path(raw, "key_file", where, "app.key"),
                        window_s=r.integer(raw, "window_s", where, 5, 3600, defaults.window_s),
                        commit_wait_s=r.integer(raw, "commit_wait_s", where, 1, 600, defaults.commit_wait_s),
                        identity=identity, identity_cert=cert, identity_key=key)


def _cases(r: _Reader, raw: Mapping[str, Any] | None) -> CasesConfig | None:
    if raw is None:
        return None
    where = "[cases] "
    r.check_keys(raw, _CASES_KEYS, "[cases]")
    providers = raw.get("providers", {})
    if not isinstance(providers, dict) or not all(
            isinstance(d, str) and DEPARTMENT_RE.fullmatch(d) and isinstance(a, str) for d, a in providers.items()):
        raise r.fail(where, 'providers must be a table of department = "host:port" (the client port of its node), '
                            f'e.g. {{ housing-registry = "10.0.0.5:7101" }} (got {show_value(providers)})')
    for department, address in providers.items():
        try:
            parse_address(address)
        except ValueError as exc:
            raise r.fail(where, f"providers.{department}: {exc}") from None
    return CasesConfig(key_file=r.path(raw, "key_file", where, "app.key"), providers=tuple(sorted(providers.items())),
                       timeout_s=r.integer(raw, "timeout_s", where, 1, 600, 30))


def _identity(r: _Reader, raw: Mapping[str, Any] | None, tls: TlsConfig) -> IdentityConfig | None:
    if raw is None:
        return None
    where = "[identity] "
    r.check_keys(raw, _IDENTITY_KEYS, "[identity]")
    if not tls.require_client_cert:
        raise r.fail(where, "the subject-tag endpoint answers only windows with a client certificate; set [tls] "
                            "require_client_cert = true (with ca, cert and key), or remove [identity]")
    windows = r.required(raw, "windows", where, '["civil-affairs-window-1"]')
    if not isinstance(windows, list) or not windows or not all(
            isinstance(name, str) and _CERT_NAME_RE.fullmatch(name) for name in windows):
        raise r.fail(where, "windows must be a non-empty array of client certificate names (`govchain tls cert "
                            f"--name NAME`), e.g. [\"civil-affairs-window-1\"] (got {show_value(windows)})")
    defaults = IdentityConfig(oprf_key_file=Path(), windows=())
    return IdentityConfig(oprf_key_file=r.path(raw, "oprf_key_file", where, "oprf.key"),
                          windows=tuple(dict.fromkeys(windows)),
                          rate_per_minute=r.integer(raw, "rate_per_minute", where, 1, 1_000_000,
                                                    defaults.rate_per_minute),
                          burst=r.integer(raw, "burst", where, 1, 100_000, defaults.burst))


def _tls(r: _Reader, raw: Mapping[str, Any] | None) -> TlsConfig:
    if raw is None:
        raise r.fail("", 'the [tls] table is missing; add [tls] with ca, cert and key (`govchain tls --help` '
                         'makes them), or [tls] insecure = true for plaintext on a trusted network')
    where = "[tls] "
    r.check_keys(raw, _TLS_KEYS, "[tls]")
    insecure = r.boolean(raw, "insecure", where)
    require_client_cert = r.boolean(raw, "require_client_cert", where)
    if insecure:
        extra = [key for key in ("ca", "cert", "key") if key in raw] + (["require_client_cert"]
                                                                       if require_client_cert else [])
        if extra:
            raise r.fail(where, f"{extra[0]} has no effect with insecure = true; remove it, or remove insecure")
        return TlsConfig(insecure=True)
    return TlsConfig(ca=r.path(raw, "ca", where, "tls/ca.crt"), cert=r.path(raw, "cert", where, "tls/node.crt"),
                     key=r.path(raw, "key", where, "tls/node.key"), require_client_cert=require_client_cert)


def _sources(r: _Reader, raw: object) -> tuple[SourceConfig, ...]:
    if raw is None:
        return ()
    sources: list[SourceConfig] = []
    for where, table in r.array_of_tables(raw, "sources", _SOURCE_KEYS, "item, kind, path, key_column and fields"):
        item = r.string(table, "item", where, pattern=ITEM_RE, required_what='"household-registration"',
                        rule="a catalog item id: lowercase letters, digits and '-', 1-63 characters, "
                             "not starting or ending with '-'")
        where = f'{where.rstrip()} (item "{item}") '
        if any(s.item == item for s in sources):
            raise r.fail(where, "appears twice; each catalog item has one source")
        kind = r.string(table, "kind", where, required_what='"sqlite" (or "csv")', rule='"sqlite" or "csv"')
        if kind not in SOURCE_KINDS:
            later = ' (PostgreSQL is not built yet: docs/design.md, "Data-source adapters")' \
                if kind.startswith("postgres") else ""
            raise r.fail(where, f'kind must be "sqlite" or "csv" (got {show_value(kind)}){later}')
        path = r.path(table, "path", where, "sources/registry.db" if kind == "sqlite" else "sources/registry.csv")
        if kind == "sqlite":
            table_name = r.string(table, "table", where, pattern=COLUMN_RE, required_what='"residents"',
                                  rule=_COLUMN_RULE.replace("column", "table"))
        elif "table" in table:
            raise r.fail(where, 'table has no effect with kind = "csv" (the file is the table); remove it')
        else:
            table_name = None
        key_column = r.string(table, "key_column", where, pattern=COLUMN_RE, required_what='"id_number"',
                              rule=_COLUMN_RULE)
        sources.append(SourceConfig(item=item, kind=kind, path=path, key_column=key_column, table=table_name,
                                    fields=_source_fields(r, table, where, key_column)))
    return tuple(sources)


def _source_fields(r: _Reader, table: Mapping[str, Any], where: str, key_column: str) -> tuple[tuple[str, str], ...]:
    example = 'fields = { status = "marital_status" } (item field = "column")'
    raw = r.required(table, "fields", where, '{ status = "marital_status" } (item field = "column")')
    if not isinstance(raw, dict) or not raw:
        raise r.fail(where, f"fields must be a non-empty table, e.g. {example} (got {show_value(raw)})")
    for name, column in raw.items():
        if not FIELD_RE.fullmatch(name):
            raise r.fail(where, f'fields: "{name[:64]}" is not a field name: lowercase ASCII letters, digits and '
                                f"'_', starting with a letter, at most 64 characters")
        if not isinstance(column, str) or not COLUMN_RE.fullmatch(column):
            raise r.fail(where, f"fields.{name} must be {_COLUMN_RULE} (got {show_value(column)})")
        if column == key_column:
            raise r.fail(where, f'fields.{name} is the key column "{key_column}": an answer never carries the ID '
                                f"number; remove it")
    return tuple(raw.items())


# --------------------------------------------------------------------------- template

def _toml_str(value: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes.
    return json.dumps(value)


def config_template(
    department: str,
    *,
    display_name: str | None = None,
    key_file: str = "node.key",
    data_dir: str = "data",
    peer_listen: str = "127.0.0.1:7001",
    client_listen: str = "127.0.0.1:7101",
    tls: TlsConfig = TlsConfig(ca=Path("tls/ca.crt"), cert=Path("tls/node.crt"), key=Path("tls/node.key")),
    chains: Mapping[str, str] | Iterable[tuple[str, str]] = (("catalog", "genesis/catalog.json"),),
    tick_ms: int = TICK_MS_DEFAULT,
    log_level: str = "INFO",
    limits: LimitsConfig | None = None,
    mqtt: MqttConfig | None = None,
    metrics_listen: str | None = None,
    explorer_listen: str | None = None,
) -> str:
    """Render a commented node.toml that load_config accepts.

    `chains` maps chain id -> genesis path (relative paths resolve against
    the config file's directory). With mqtt=None the [mqtt] table is written
    commented out. The result is validated before it is returned, so a bad
    argument raises ConfigError here rather than at node start.
    """
    chain_items = list(chains.items()) if isinstance(chains, Mapping) else list(chains)
    limits = limits or LimitsConfig()
    lines = [
        "# govchain node configuration (TOML).",
        "# Relative paths resolve against this file's directory. Unknown keys are errors.",
        "",
        "# Department id: lowercase letters, digits and '-'. Must match the genesis validators.",
        f"department = {_toml_str(department)}",
        f"display_name = {_toml_str(display_name or department)}",
        "",
        "# Ed25519 private key (mode 0600; the node refuses a group/world-readable key).",
        f"key_file = {_toml_str(key_file)}",
        "# One LevelDB per chain is created under this directory.",
        f"data_dir = {_toml_str(data_dir)}",
        "",
        "# gRPC endpoint for other validators only (\"host:port\", IPv6 as \"[::1]:7001\").",
        f"peer_listen = {_toml_str(peer_listen)}",
        "# gRPC endpoint for clients (Client, health, reflection); must differ from peer_listen.",
        f"client_listen = {_toml_str(client_listen)}",
        "",
        "# Length of one consensus tick in milliseconds (1..1000); genesis timeouts are",
        "# given in ms and converted to ticks, rounding up.",
        f"tick_ms = {tick_ms}",
        "# DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        f"log_level = {_toml_str(log_level)}",
        "",
        "# Chains this node takes part in; each genesis lists the chain's validators.",
    ]
    for chain_id, genesis in chain_items:
        lines += ["[[chains]]", f"id = {_toml_str(chain_id)}", f"genesis = {_toml_str(str(genesis))}", ""]
    lines += [
        "[limits]",
        f"# Largest gRPC message in bytes ({MESSAGE_BYTES_RANGE[0]}..{MESSAGE_BYTES_RANGE[1]}).",
        f"message_bytes_max = {limits.message_bytes_max}",
        "# Pending transactions per chain before new submissions are refused.",
        f"mempool_txs_max = {limits.mempool_txs_max}",
        "# Concurrent RPCs each port's gRPC server accepts (the peer port has its own pool).",
        f"concurrent_rpcs_max = {limits.concurrent_rpcs_max}",
        "# Concurrent streams (StreamBlocks, SubmitStream, Deliver) per client certificate,",
        "# or per IP address for clients without one, and per peer.",
        f"client_streams_max = {limits.client_streams_max}",
        "# Outbound messages buffered per peer stream; when full, new messages are dropped (PBFT retransmits).",
        f"stream_queue_max = {limits.stream_queue_max}",
        "",
    ]
    if tls.insecure:
        lines += ["# Plaintext on both ports: anyone who reaches the peer port can speak as a peer.",
                  "[tls]", "insecure = true", ""]
    else:
        lines += ["# Mutual TLS on the peer port, TLS on the client port (`govchain tls ca`, `govchain tls cert`).",
                  "[tls]",
                  "# The network CA: every peer's (and client's) certificate must chain to it.",
                  f"ca = {_toml_str(str(tls.ca))}",
                  "# This department's certificate, bound to key_file (`govchain tls cert --node-key`).",
                  f"cert = {_toml_str(str(tls.cert))}",
                  f"key = {_toml_str(str(tls.key))}",
                  "# true: the client port serves only clients with a certificate from the CA.",
                  f"require_client_cert = {'true' if tls.require_client_cert else 'false'}",
                  ""]
    lines += [
        "# Optional best-effort event feed (block summaries, node status) over MQTT.",
    ]
    mqtt_lines = [
        "[mqtt]",
        f"host = {_toml_str(mqtt.host if mqtt else '127.0.0.1')}",
        f"port = {mqtt.port if mqtt else 1883}",
        f"topic_prefix = {_toml_str(mqtt.topic_prefix if mqtt else 'govchain')}",
    ]
    if mqtt and mqtt.client_id:
        mqtt_lines.append(f"client_id = {_toml_str(mqtt.client_id)}")
    else:
        mqtt_lines.append(f"# client_id = {_toml_str('govchain-' + department)}")
    mqtt_lines.append(f"queue_max = {mqtt.queue_max if mqtt else MqttConfig(host='x').queue_max}")
    lines += mqtt_lines if mqtt else [line if line.startswith("#") else f"# {line}" for line in mqtt_lines]
    lines += ["", "# Optional Prometheus metrics over plain HTTP at http://<listen>/metrics (docs/operations.md).",
              f"{'' if metrics_listen else '# '}[metrics]",
              f"{'' if metrics_listen else '# '}listen = {_toml_str(metrics_listen or '127.0.0.1:9101')}"]
    lines += ["", "# Optional read-only web explorer over plain HTTP at http://<listen>/ (docs/design.md, "
                  "\"Explorer and audit page\").",
              f"{'' if explorer_listen else '# '}[explorer]",
              f"{'' if explorer_listen else '# '}listen = {_toml_str(explorer_listen or '127.0.0.1:8101')}"]
    text = "\n".join(lines) + "\n"
    try:
        parse_config(tomllib.loads(text), source="config_template", base_dir=Path("."))
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - a bug in this function
        raise ConfigError(f"config_template: rendered invalid TOML: {exc}") from None
    return text
