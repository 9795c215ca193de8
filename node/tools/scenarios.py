"""Seed scenarios as data: one folder per scenario under scenarios/, read
and checked here (docs/design.md, "Scenarios"). A new scenario is a new
folder; no code changes.

    scenarios/<name>/scenario.toml   people, catalog items, service items, offers, steps
    scenarios/<name>/*.csv           the providers' department data (invented people)

`load(folder)` returns a Scenario or raises ScenarioError naming the file,
the entry and what is wrong. `load_many(names)` also checks that scenarios
played on one network do not claim the same ids. Nothing here touches a
network: node/tools/scenario_run.py sets one up and plays the steps.
"""
from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from node.adapters.predicates import PredicateError, predicate_fields
from node.core import rules
from node.core.config import COLUMN_RE, DEPARTMENT_RE, ITEM_RE
from node.identity.oprf import IdNumberError, normalize_id_number

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
FILE = "scenario.toml"
IDENTITY_DEPARTMENT = "public-security"  # records the authn events (localnet's identity role)
ID_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
RECORD_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
NAME_PREFIX = "Sample "  # every invented person's name starts so (node/adapters/sample.py)
WINDOW_RE = re.compile(r"([a-z0-9-]+)/[A-Za-z0-9._-]{1,32}")
STEP_KINDS = ("authenticate", "certificate", "case", "audit")
OUTCOMES = (rules.APPROVED, rules.REFUSED, "review")
TOP_KEYS = {"title": True, "before": True, "people": True, "catalog_items": True, "agreements": False,
            "service_items": True, "offers": False, "steps": True}  # key -> required
ANSWER_MODES = ("fields", "predicate")
OFFER_CHAINS = ("catalog", "item", "authn", "authz", "cert")


class ScenarioError(ValueError):
    """A scenario folder that cannot be played; the message says where and why."""


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    id_number: str


@dataclass(frozen=True)
class CatalogItem:
    provider: str
    item_id: str
    fields: tuple[str, ...]
    answer_modes: tuple[str, ...]
    consent_required: bool
    source: Path  # the CSV file, absolute
    columns: dict[str, str]  # item field -> CSV column
    key_column: str = "id_number"

    def register_payload(self) -> dict:
        """catalog.register_item (node/contracts/catalog.py)."""
        return {"item_id": self.item_id, "fields": list(self.fields), "answer_modes": list(self.answer_modes),
                "consent_required": self.consent_required, "requester_roles": ["requester"]}


@dataclass(frozen=True)
class Agreement:
    """A standing sharing agreement (the catalog contract's propose_agreement / accept_agreement): the
    requester's cases ask these items of the provider without a consent."""
    provider: str
    requester: str
    items: tuple[str, ...]


def find_agreement(agreements, provider: str, requester: str, item_id: str) -> Agreement | None:
    """The agreement under which `requester` asks `provider` for `item_id`, if any."""
    return next((a for a in agreements if (a.provider, a.requester) == (provider, requester)
                 and item_id in a.items), None)


@dataclass(frozen=True)
class ServiceItem:
    department: str
    payload: dict  # item.register_item (node/contracts/item.py)

    @property
    def item_id(self) -> str:
        return self.payload["item_id"]


@dataclass(frozen=True)
class Offer:
    department: str
    table: dict  # one [[offers]] table of node.toml (node/core/config.py OfferConfig)


@dataclass(frozen=True)
class Step:
    kind: str
    data: dict


@dataclass(frozen=True)
class Scenario:
    name: str
    folder: Path
    title: str
    before: str
    people: dict[str, Person]
    catalog_items: tuple[CatalogItem, ...]
    service_items: tuple[ServiceItem, ...]
    offers: tuple[Offer, ...]
    steps: tuple[Step, ...]
    issuers: frozenset[str] = field(default=frozenset())  # departments that issue certificates in the steps
    agreements: tuple[Agreement, ...] = ()

    def agreement(self, provider: str, requester: str, item_id: str) -> Agreement | None:
        return find_agreement(self.agreements, provider, requester, item_id)

    @property
    def competent(self) -> set[str]:
        return {s.department for s in self.service_items}

    @property
    def providers(self) -> set[str]:
        return {c.provider for c in self.catalog_items}

    @property
    def departments(self) -> set[str]:
        return self.competent | self.providers | self.issuers | {o.department for o in self.offers} | \
            {a.requester for a in self.agreements} | {IDENTITY_DEPARTMENT}

    def service_item(self, item_id: str) -> ServiceItem:
        return next(s for s in self.service_items if s.item_id == item_id)


def available(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if (p / FILE).is_file()) if Path(root).is_dir() else []


def folder_of(name: str, root: Path = ROOT) -> Path:
    """A scenario name (a folder of `root`) or a path to a folder."""
    path = Path(name)
    if (path / FILE).is_file():
        return path
    if ID_RE.fullmatch(name) and (Path(root) / name / FILE).is_file():
        return Path(root) / name
    raise ScenarioError(f"no scenario {name!r}: not a folder with {FILE}; scenarios in {root}: "
                        f"{', '.join(available(root)) or 'none'}")


def load_many(names, root: Path = ROOT) -> list[Scenario]:
    """The scenarios, checked to share one network: no catalog item, service
    item, offer, case or certificate id claimed twice."""
    scenarios = [load(folder_of(n, root)) for n in names]
    seen: dict[tuple[str, str], str] = {}
    for s in scenarios:
        ids = [("catalog item", c.item_id) for c in s.catalog_items] + \
              [("service item", i.item_id) for i in s.service_items] + [("offer", o.table["id"]) for o in s.offers] + \
              [("case", st.data["case"]) for st in s.steps if st.kind == "case"] + \
              [("certificate", st.data["cert_id"]) for st in s.steps if st.kind == "certificate"]
        for what in ids:
            if what in seen and seen[what] != s.name:
                raise ScenarioError(f"{s.name}: {what[0]} {what[1]!r} is also scenario {seen[what]}'s; scenarios "
                                    "played on one network need distinct ids")
            seen[what] = s.name
    return scenarios


def load(folder: Path) -> Scenario:
    folder = Path(folder).resolve()
    path = folder / FILE
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file (a scenario folder holds {FILE})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not TOML: {exc}") from None
    return _Reader(folder, path).scenario(data)


class _Reader:
    def __init__(self, folder: Path, path: Path) -> None:
        self.folder, self.path = folder, path

    def fail(self, where: str, what: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {where}: {what}" if where else f"{self.path}: {what}")

    def keys(self, table: object, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(table, dict):
            raise self.fail(where, "must be a table")
        for key in table:
            if key not in required + optional:
                raise self.fail(where, f"unknown key {key!r}; keys: {', '.join(required + optional)}")
        for key in required:
            if key not in table:
                raise self.fail(where, f"missing key {key!r}")
        return table

    def text(self, table: dict, key: str, where: str, pattern: re.Pattern | None = None, rule: str = "") -> str:
        value = table[key]
        if not isinstance(value, str) or not value.strip() or (pattern is not None and not pattern.fullmatch(value)):
            raise self.fail(where, f"{key} must be {rule or 'a non-empty string'} (got {value!r:.80})")
        return value

    def department(self, table: dict, key: str, where: str) -> str:
        from node.tools.localnet import DEPARTMENTS

        value = self.text(table, key, where, DEPARTMENT_RE, "a department id")
        known = [d for d, _ in DEPARTMENTS]
        if value not in known:
            raise self.fail(where, f"{key} {value!r} is not a department of the local network; departments: "
                                   f"{', '.join(known)}")
        return value

    def tables(self, data: dict, key: str) -> list[tuple[str, dict]]:
        raw = data.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
            raise self.fail(key, f"must be an array of tables ([[{key}]])")
        return [(f"{key}[{i}]", t) for i, t in enumerate(raw)]

    # ---- sections ----

    def scenario(self, data: dict) -> Scenario:
        for key in data:
            if key not in TOP_KEYS:
                raise self.fail("", f"unknown key {key!r}; keys: {', '.join(TOP_KEYS)}")
        for key, required in TOP_KEYS.items():
            if required and key not in data:
                raise self.fail("", f"missing key {key!r}")
        people = self.people(data)
        catalog = self.catalog_items(data)
        agreements = self.agreements(data, catalog)
        service = self.service_items(data, catalog, agreements)
        offers = tuple(self.offer(where, t) for where, t in self.tables(data, "offers"))
        steps = self.steps(data, people, service)
        return Scenario(name=self.folder.name, folder=self.folder, title=self.text(data, "title", ""),
                        before=self.text(data, "before", ""), people=people, catalog_items=catalog,
                        service_items=service, offers=offers, steps=steps, agreements=agreements,
                        issuers=frozenset(s.data["department"] for s in steps if s.kind == "certificate"))

    def people(self, data: dict) -> dict[str, Person]:
        people: dict[str, Person] = {}
        for where, t in self.tables(data, "people"):
            self.keys(t, where, ("id", "name", "id_number"))
            pid = self.text(t, "id", where, ID_RE, "a short id: a-z, 0-9, '-', '_'")
            if pid in people:
                raise self.fail(where, f"person {pid!r} appears twice")
            name = self.text(t, "name", where)
            if not name.startswith(NAME_PREFIX):
                raise self.fail(where, f"name must start with {NAME_PREFIX!r}: scenario people are invented, "
                                       "and obviously so")
            people[pid] = Person(pid, name, self.id_number(t["id_number"], where))
        if not people:
            raise self.fail("people", "a scenario needs at least one person")
        return people

    def id_number(self, value: object, where: str) -> str:
        try:
            return normalize_id_number(value)
        except IdNumberError as exc:
            raise self.fail(where, f"id_number: {exc}") from None

    def catalog_items(self, data: dict) -> tuple[CatalogItem, ...]:
        items: list[CatalogItem] = []
        for where, t in self.tables(data, "catalog_items"):
            self.keys(t, where, ("provider", "item_id", "fields", "answer_modes", "consent_required", "source",
                                 "columns"), ("key_column",))
            item_id = self.text(t, "item_id", where, ITEM_RE, "a catalog item id: a-z, 0-9, '-'")
            where = f"{where} ({item_id})"
            if any(i.item_id == item_id for i in items):
                raise self.fail(where, "appears twice")
            fields = t["fields"]
            if not isinstance(fields, list) or not fields or not all(
                    isinstance(f, str) and COLUMN_RE.fullmatch(f) for f in fields) or len(set(fields)) < len(fields):
                raise self.fail(where, "fields must be a non-empty list of distinct field names")
            modes = t["answer_modes"]
            if not isinstance(modes, list) or not modes or not set(modes) <= set(ANSWER_MODES):
                raise self.fail(where, f"answer_modes must be a non-empty list of {', '.join(ANSWER_MODES)}")
            if not isinstance(t["consent_required"], bool):
                raise self.fail(where, "consent_required must be true or false")
            columns = t["columns"]
            if not isinstance(columns, dict) or set(columns) != set(fields) or not all(
                    isinstance(c, str) and COLUMN_RE.fullmatch(c) for c in columns.values()):
                raise self.fail(where, f"columns must map each field ({', '.join(fields)}) to a CSV column name")
            key_column = self.text(t, "key_column", where, COLUMN_RE) if "key_column" in t else "id_number"
            source = self.source(t, where, [key_column, *columns.values()], key_column)
            items.append(CatalogItem(self.department(t, "provider", where), item_id, tuple(fields), tuple(modes),
                                     t["consent_required"], source, dict(columns), key_column))
        return tuple(items)

    def source(self, t: dict, where: str, needed: list[str], key_column: str) -> Path:
        name = self.text(t, "source", where)
        path = (self.folder / name).resolve()
        if path.parent != self.folder or path.suffix != ".csv":
            raise self.fail(where, f"source must be a .csv file in the scenario folder (got {name!r})")
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f, strict=True))
        except FileNotFoundError:
            raise self.fail(where, f"source {name}: no such file in {self.folder}") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self.fail(where, f"source {name}: not a UTF-8 CSV file ({type(exc).__name__})") from None
        header = rows[0] if rows else []
        missing = [c for c in needed if c not in header]
        if missing:
            raise self.fail(where, f"source {name}: no column {missing[0]!r} in its header ({', '.join(header)})")
        key = header.index(key_column)
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise self.fail(where, f"source {name} line {line}: {len(row)} cells, the header has {len(header)}")
            self.id_number(row[key], f"{where} source {name} line {line}")
            if "full_name" in header and not row[header.index("full_name")].startswith(NAME_PREFIX):
                raise self.fail(where, f"source {name} line {line}: full_name must start with {NAME_PREFIX!r}")
        return path

    def agreements(self, data: dict, catalog: tuple[CatalogItem, ...]) -> tuple[Agreement, ...]:
        by_id = {c.item_id: c for c in catalog}
        out: list[Agreement] = []
        for where, t in self.tables(data, "agreements"):
            self.keys(t, where, ("provider", "requester", "items"))
            provider, requester = self.department(t, "provider", where), self.department(t, "requester", where)
            if provider == requester:
                raise self.fail(where, "an agreement is between two departments; name the other one as requester")
            items = t["items"]
            if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items) \
                    or len(set(items)) < len(items):
                raise self.fail(where, "items must be a non-empty list of distinct catalog item ids")
            for item_id in items:
                item = by_id.get(item_id)
                if item is None or item.provider != provider:
                    raise self.fail(where, f"item {item_id!r} is not one of {provider}'s [[catalog_items]] here")
                if item.consent_required:
                    raise self.fail(where, f"catalog item {item_id!r} requires consent, so an agreement does not "
                                           "let anyone ask it; set its consent_required = false")
            out.append(Agreement(provider, requester, tuple(items)))
        return tuple(out)

    def service_items(self, data: dict, catalog: tuple[CatalogItem, ...],
                      agreements: tuple[Agreement, ...]) -> tuple[ServiceItem, ...]:
        by_id = {c.item_id: c for c in catalog}
        out: list[ServiceItem] = []
        for where, t in self.tables(data, "service_items"):
            self.keys(t, where, ("department", "item_id", "title", "rule", "auto_approve", "notice_template",
                                 "inputs"))
            item_id = self.text(t, "item_id", where, ITEM_RE, "a service item id: a-z, 0-9, '-'")
            where = f"{where} ({item_id})"
            if any(s.item_id == item_id for s in out):
                raise self.fail(where, "appears twice")
            department = self.department(t, "department", where)
            inputs = t["inputs"]
            if not isinstance(inputs, list) or not inputs:
                raise self.fail(where, "inputs must be a non-empty list of inputs")
            for i, spec in enumerate(inputs):
                self.input(spec, f"{where} inputs[{i}]", by_id)
                item = by_id[spec["catalog_item"]]
                if not item.consent_required and not find_agreement(agreements, item.provider, department,
                                                                    item.item_id):
                    raise self.fail(f"{where} inputs[{i}]", f"catalog item {item.item_id!r} needs no consent, so "
                                    f"{department} asks it under a standing agreement: add [[agreements]] with "
                                    f"provider = \"{item.provider}\", requester = \"{department}\" and the item")
            if not isinstance(t["auto_approve"], bool):
                raise self.fail(where, "auto_approve must be true or false")
            try:
                rules.compile_rule(self.text(t, "rule", where), [s["name"] for s in inputs])
            except rules.RuleError as exc:
                raise self.fail(where, f"rule: {exc}") from None
            out.append(ServiceItem(department, {k: t[k] for k in ("item_id", "title", "inputs", "rule",
                                                                   "auto_approve", "notice_template")}))
        return tuple(out)

    def input(self, spec: object, where: str, catalog: dict[str, CatalogItem]) -> None:
        mode = "predicate" if isinstance(spec, dict) and "predicate" in spec else "field"
        self.keys(spec, where, ("name", "provider", "catalog_item", mode), ("if_missing",))
        self.text(spec, "name", where, rules.INPUT_NAME_RE, "an input name: a-z, 0-9, '_', starting with a letter")
        name = spec["catalog_item"]
        item = catalog.get(name)
        if item is None:
            raise self.fail(where, f"catalog_item {name!r} is not one of this scenario's [[catalog_items]] "
                                   f"({', '.join(catalog) or 'none'})")
        if spec["provider"] != item.provider:
            raise self.fail(where, f"provider {spec['provider']!r}: catalog item {name!r} is {item.provider}'s")
        wanted = "predicate" if mode == "predicate" else "fields"
        if wanted not in item.answer_modes:
            raise self.fail(where, f"catalog item {name!r} does not answer in mode {wanted}")
        try:
            if mode == "predicate":
                predicate_fields(spec["predicate"], item.fields)
            elif spec["field"] not in item.fields:
                raise PredicateError(f"field {spec['field']!r} is not a field of catalog item {name!r}")
        except PredicateError as exc:
            raise self.fail(where, str(exc)) from None

    def offer(self, where: str, t: dict) -> Offer:
        self.keys(t, where, ("department", "id", "chain", "contract", "method", "notice"), ("tag_field", "where"))
        department = self.department(t, "department", where)
        self.text(t, "id", where, RECORD_ID_RE, "1-64 of letters, digits, '.', '_', ':', '-'")
        if t["chain"] not in OFFER_CHAINS:
            raise self.fail(where, f"chain must be one of {', '.join(OFFER_CHAINS)} (got {t['chain']!r})")
        if not isinstance(t.get("where", {}), dict):
            raise self.fail(where, "where must be a table of field = value")
        return Offer(department, {k: v for k, v in t.items() if k != "department"})

    def steps(self, data: dict, people: dict[str, Person], service: tuple[ServiceItem, ...]) -> tuple[Step, ...]:
        items = {s.item_id: s for s in service}
        steps: list[Step] = []
        for where, t in self.tables(data, "steps"):
            kind = t.get("kind")
            if kind not in STEP_KINDS:
                raise self.fail(where, f"kind must be one of {', '.join(STEP_KINDS)} (got {kind!r})")
            where = f"{where} ({kind})"
            if kind == "authenticate":
                self.keys(t, where, ("kind", "person", "window"))
                self.window(t, where)
            elif kind == "certificate":
                self.keys(t, where, ("kind", "department", "cert_id", "type", "holder", "fields"), ("notify",))
                self.department(t, "department", where)
                self.text(t, "cert_id", where, RECORD_ID_RE, "1-64 of letters, digits, '.', '_', ':', '-'")
                if not isinstance(t["fields"], dict) or not t["fields"] or not all(
                        isinstance(v, str) for v in t["fields"].values()):
                    raise self.fail(where, "fields must be a table of field = \"text\"")
            elif kind == "case":
                self.keys(t, where, ("kind", "case", "item", "applicant", "window", "expect"), ("review",))
                self.text(t, "case", where, RECORD_ID_RE, "1-64 of letters, digits, '.', '_', ':', '-'")
                item = items.get(t["item"])
                if item is None:
                    raise self.fail(where, f"item {t['item']!r} is not one of this scenario's [[service_items]] "
                                           f"({', '.join(items) or 'none'})")
                if self.window(t, where) != item.department:
                    raise self.fail(where, f"window {t['window']!r}: cases of {item.item_id} are opened at "
                                           f"{item.department}'s windows")
                if t["expect"] not in OUTCOMES:
                    raise self.fail(where, f"expect must be one of {', '.join(OUTCOMES)} (got {t['expect']!r})")
                if (t["expect"] == "review") != ("review" in t):
                    raise self.fail(where, "review (the officer's outcome) goes with expect = \"review\", and only "
                                           "with it")
                if t["expect"] == "review" and t["review"] not in OUTCOMES[:2]:
                    raise self.fail(where, f"review must be approved or refused (got {t['review']!r})")
                if t["expect"] != "review" and t["expect"] == rules.APPROVED and not item.payload["auto_approve"]:
                    raise self.fail(where, f"item {item.item_id} is decided by an officer: expect \"review\"")
            else:
                self.keys(t, where, ("kind", "person"))
            for key in ("person", "holder", "applicant"):
                if key in t and t[key] not in people:
                    raise self.fail(where, f"{key} {t[key]!r} is not one of this scenario's [[people]] "
                                           f"({', '.join(people)})")
            notify = t.get("notify", [])
            if not isinstance(notify, list) or any(p not in people for p in notify):
                raise self.fail(where, f"notify must list people of this scenario ({', '.join(people)})")
            steps.append(Step(kind, dict(t)))
        if not steps:
            raise self.fail("steps", "a scenario needs at least one step")
        return tuple(steps)

    def window(self, t: dict, where: str) -> str:
        value = self.text(t, "window", where, WINDOW_RE, '"<department>/<window>", e.g. "power-company/window-1"')
        return WINDOW_RE.fullmatch(value).group(1)
