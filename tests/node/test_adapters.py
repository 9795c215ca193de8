"""Data-source adapters (docs/design.md, "Data-source adapters"): real
SQLite and CSV files, the [[sources]] config, predicates, and no ID number
or value in any message or log line."""
from __future__ import annotations

import logging
import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

from node.adapters import (AdapterError, CsvAdapter, PredicateError, SqliteAdapter, UnknownField, holds,
                           open_sources, predicate_fields)
from node.adapters.sample import RESIDENTS, SAMPLE_ID_NUMBERS, SAMPLE_NAMES, write_csv, write_sqlite
from node.core.config import SourceConfig
from node.identity.oprf import normalize_id_number
from tests.node.test_config import MINIMAL, error_of, load_text

ONE, TWO, THREE = SAMPLE_ID_NUMBERS[:3]
UNKNOWN = "110101200001019995"  # in neither sample file
FIELDS = (("status", "marital_status"), ("household", "household_no"), ("birth_date", "birth_date"),
          ("size", "household_size"))


def mapping(kind: str, path: Path, **changes) -> SourceConfig:
    base = dict(item="household-registration", kind=kind, path=path, key_column="id_number", fields=FIELDS,
                table="residents" if kind == "sqlite" else None)
    return SourceConfig(**{**base, **changes})


@pytest.fixture(params=["sqlite", "csv"])
def source(request, tmp_path):
    """(sources, mapping) over the sample residents, as SQLite and as CSV."""
    kind = request.param
    path = write_sqlite(tmp_path / "household.db") if kind == "sqlite" else write_csv(tmp_path / "household.csv")
    m = mapping(kind, path)
    sources = open_sources([m])
    yield sources, m
    sources.close()


def test_sample_data_is_fictitious_and_checksummed():
    assert all(normalize_id_number(n) == n for n in SAMPLE_ID_NUMBERS)
    assert all(name.startswith("Sample Resident ") for name in SAMPLE_NAMES)
    assert len(set(SAMPLE_ID_NUMBERS)) == len(RESIDENTS)


def test_lookup_returns_only_the_asked_fields(source):
    sources, m = source
    record = sources.lookup(m.item, ONE, ["status", "household"])
    assert record == {"status": "married", "household": "H-0001"}
    assert sources.lookup(m.item, THREE, ["birth_date"]) == {"birth_date": "1978-06-15"}
    size = sources.lookup(m.item, TWO, ["size"])["size"]
    assert size == (3 if m.kind == "sqlite" else "3")  # SQLite keeps the column's type, CSV cells are text


def test_lookup_of_an_unknown_id_is_none(source):
    sources, m = source
    assert sources.lookup(m.item, UNKNOWN, ["status"]) is None
    assert sources.lookup(m.item, f" {ONE}", ["status"]) is None  # exact match: the caller normalizes


@pytest.mark.parametrize("fields, message", [
    (["status", "full_name"], "item 'household-registration' has no field \"full_name\"; fields: status, "
                              "household, birth_date, size"),
    (["marital_status"], "has no field \"marital_status\""),  # a column name is not a field name
    (['status" FROM residents --'], "has no field a malformed name"),
    ([], "ask for at least one field"),
])
def test_a_field_not_in_the_mapping_is_refused(source, fields, message):
    sources, m = source
    with pytest.raises(UnknownField) as info:
        sources.lookup(m.item, ONE, fields)
    assert message in str(info.value)


@pytest.mark.parametrize("attack", [
    "' OR '1'='1", "x' OR 1=1 --", f"{ONE}' OR 'a'='a", "1; DROP TABLE residents; --",
    f"{ONE}\" OR \"1\"=\"1", "%", "_" * 18, "*",
])
def test_sql_injection_in_the_id_is_just_an_id_that_matches_nobody(source, attack):
    sources, m = source
    assert sources.lookup(m.item, attack, ["status"]) is None
    assert sources.lookup(m.item, ONE, ["status"]) == {"status": "married"}  # the table is intact


def test_the_sqlite_connection_is_read_only(tmp_path):
    path = write_sqlite(tmp_path / "household.db")
    adapter = SqliteAdapter(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
        adapter._db.execute("DELETE FROM residents")
    adapter.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM residents").fetchone() == (len(RESIDENTS),)
    with pytest.raises(AdapterError, match="no such SQLite database file"):
        SqliteAdapter(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # mode=ro never creates it
    (tmp_path / "not.db").write_text("id_number,status\n")
    with pytest.raises(AdapterError, match="cannot open it as a SQLite database read-only"):
        SqliteAdapter(tmp_path / "not.db")


def test_a_mapping_that_does_not_match_the_source_is_refused_at_open(tmp_path):
    db, csv_path = write_sqlite(tmp_path / "household.db"), write_csv(tmp_path / "household.csv")
    with pytest.raises(AdapterError, match="item 'household-registration': .*household.db has no table 'people'"):
        open_sources([mapping("sqlite", db, table="people")])
    with pytest.raises(AdapterError, match="table 'residents' in .*household.db has no column 'marital'; "
                                           "columns: id_number, full_name, marital_status"):
        open_sources([mapping("sqlite", db, fields=(("status", "marital"),))])
    with pytest.raises(AdapterError, match="household.csv has no column 'id'; columns: id_number, full_name"):
        open_sources([mapping("csv", csv_path, key_column="id")])


def test_two_records_with_one_id_are_an_error_not_an_answer(tmp_path):
    path = write_sqlite(tmp_path / "household.db")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dup (id_number TEXT, marital_status TEXT)")
        db.executemany("INSERT INTO dup VALUES (?, ?)", [(ONE, "married"), (ONE, "single")])
    csv_path = tmp_path / "dup.csv"
    csv_path.write_text(f"id_number,marital_status\n{ONE},married\n{ONE},single\n{TWO},married\n")
    for m in (mapping("sqlite", path, table="dup", fields=(("status", "marital_status"),)),
              mapping("csv", csv_path, fields=(("status", "marital_status"),))):
        sources = open_sources([m])
        with pytest.raises(AdapterError, match="several records .* have this ID number") as info:
            sources.lookup(m.item, ONE, ["status"])
        assert ONE not in str(info.value)
        assert sources.lookup(m.item, TWO, ["status"]) == ({"status": "married"} if m.kind == "csv" else None)
        sources.close()


def test_csv_is_reloaded_when_the_file_changes(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(f"id_number,marital_status\n{ONE},single\n")
    adapter = CsvAdapter(path)
    m = mapping("csv", path, fields=(("status", "marital_status"),))
    assert adapter.lookup(m, ONE, ["status"]) == {"status": "single"}
    assert adapter.lookup(m, TWO, ["status"]) is None
    path.write_text(f"id_number,marital_status\n{ONE},married\n{TWO},divorced\n")
    assert adapter.lookup(m, ONE, ["status"]) == {"status": "married"}
    assert adapter.lookup(m, TWO, ["status"]) == {"status": "divorced"}
    replacement = tmp_path / "new.csv"  # an editor's save: a new file renamed over the old one
    replacement.write_text(f"id_number,marital_status\n{TWO},widowed\n")
    os.replace(replacement, path)
    assert adapter.lookup(m, ONE, ["status"]) is None
    assert adapter.lookup(m, TWO, ["status"]) == {"status": "widowed"}
    path.write_text(f"id_number,status_renamed\n{TWO},widowed\n")  # the column the mapping names is gone
    with pytest.raises(AdapterError, match="no longer has the columns its mapping names"):
        adapter.lookup(m, TWO, ["status"])
    path.write_text(f"id_number,marital_status\n{TWO},married,extra\n")
    with pytest.raises(AdapterError, match="line 2 has 3 cells, the header 2"):
        adapter.lookup(m, TWO, ["status"])
    path.unlink()
    with pytest.raises(AdapterError, match="cannot read the CSV file: No such file"):
        adapter.lookup(m, TWO, ["status"])


def test_no_id_number_or_value_in_logs_or_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    db, csv_path = write_sqlite(tmp_path / "household.db"), write_csv(tmp_path / "household.csv")
    messages = []
    for m in (mapping("sqlite", db), mapping("csv", csv_path)):
        sources = open_sources([m])
        sources.lookup(m.item, ONE, ["status", "household", "birth_date"])
        for fields, id_number in ((["full_name"], ONE), (["status"], 12345), (["status"], ONE * 4)):
            with pytest.raises(AdapterError) as info:
                sources.lookup(m.item, id_number, fields)
            messages.append(str(info.value))
        with pytest.raises(PredicateError) as info:
            holds(sources.lookup(m.item, ONE, ["status"]), {"field": "status", "op": "lt", "value": 3})
        messages.append(str(info.value))
        sources.close()
    text = "\n".join(messages + [r.getMessage() for r in caplog.records])
    assert "loaded 6 records" in text  # the log is captured at all
    for secret in (ONE, "married", "H-0001", "1990-03-07", "Sample Resident"):
        assert secret not in text


# ---- predicates -------------------------------------------------------------------------------

RECORD = {"status": "married", "birth_date": "1990-03-07", "size": 3, "ratio": 0.5, "csv_size": "3",
          "empty": None}


@pytest.mark.parametrize("predicate, expected", [
    ({"field": "status", "op": "eq", "value": "married"}, True),
    ({"field": "status", "op": "eq", "value": "single"}, False),
    ({"field": "status", "op": "ne", "value": "single"}, True),
    ({"field": "birth_date", "op": "lt", "value": "1990-03-08"}, True),
    ({"field": "birth_date", "op": "lt", "value": "1990-03-07"}, False),
    ({"field": "birth_date", "op": "le", "value": "1990-03-07"}, True),
    ({"field": "size", "op": "gt", "value": 2}, True),
    ({"field": "size", "op": "gt", "value": 3}, False),
    ({"field": "size", "op": "ge", "value": 3}, True),
    ({"field": "ratio", "op": "lt", "value": 1}, True),
    ({"field": "csv_size", "op": "ge", "value": 3}, True),  # a CSV cell holding a number compares as one
    ({"field": "csv_size", "op": "eq", "value": "3"}, True),
    ({"field": "csv_size", "op": "eq", "value": 3.0}, True),
    ({"field": "status", "op": "in", "value": ["single", "married"]}, True),
    ({"field": "status", "op": "in", "value": ["single", "divorced"]}, False),
    ({"field": "empty", "op": "eq", "value": None}, True),
    ({"field": "status", "op": "eq", "value": None}, False),
    ({"field": "empty", "op": "ne", "value": "x"}, True),
    ({"field": "empty", "op": "lt", "value": 5}, False),
    ({"field": "empty", "op": "in", "value": ["x"]}, False),
    ({"all": [{"field": "status", "op": "eq", "value": "married"}, {"field": "size", "op": "ge", "value": 3}]}, True),
    ({"all": [{"field": "status", "op": "eq", "value": "married"}, {"field": "size", "op": "gt", "value": 3}]}, False),
    ({"any": [{"field": "status", "op": "eq", "value": "single"}, {"field": "size", "op": "gt", "value": 2}]}, True),
    ({"not": {"field": "status", "op": "eq", "value": "married"}}, False),
])
def test_predicate_ops(predicate, expected):
    assert predicate_fields(predicate, RECORD) == sorted(set(predicate_fields(predicate)),
                                                         key=predicate_fields(predicate).index)
    assert holds(RECORD, predicate) is expected


@pytest.mark.parametrize("predicate, message", [
    ("status == 'married'", "predicate must be an object"),
    ({"field": "status", "op": "eval", "value": "x"}, "predicate.op must be one of eq, ne, lt, le, gt, ge, in"),
    ({"field": "status", "op": "eq"}, "must have exactly the keys field, op and value"),
    ({"field": "status", "op": "eq", "value": "x", "then": 1}, "must have exactly the keys field, op and value"),
    ({"field": "status", "op": "in", "value": "married"}, "value must be a list of 1-64 values for op in"),
    ({"field": "status", "op": "lt", "value": None}, "value must be a string, an integer or a finite number "
                                                      "(null only with eq or ne)"),
    ({"field": "status", "op": "eq", "value": True}, "value must be a string, an integer or a finite number"),
    ({"field": "status", "op": "eq", "value": float("nan")}, "a finite number"),
    ({"field": "status", "op": "eq", "value": {"$gt": ""}}, "value must be a string"),
    ({"all": []}, "predicate.all must be a non-empty list of predicates"),
    ({"not": {"not": {"not": {"not": {"field": "status", "op": "eq", "value": "x"}}}}}, "nested deeper than 4"),
    ({"any": [{"field": "size", "op": "eq", "value": i} for i in range(17)]}, "more than 16 comparisons"),
    ({"field": "full_name", "op": "eq", "value": "x"}, "reads field 'full_name', which the item does not have"),
])
def test_malformed_predicates_are_refused(predicate, message):
    with pytest.raises(PredicateError) as info:
        predicate_fields(predicate, RECORD)
    assert message in str(info.value)


def test_predicates_refuse_to_compare_unlike_types():
    with pytest.raises(PredicateError, match="field 'status' holds a string; op lt cannot compare it with a number"):
        holds(RECORD, {"field": "status", "op": "lt", "value": 3})
    with pytest.raises(PredicateError, match="field 'size' holds a number; op eq cannot compare it with a string"):
        holds(RECORD, {"field": "size", "op": "eq", "value": "3"})
    with pytest.raises(PredicateError, match="the record has no field 'household'"):
        holds(RECORD, {"field": "household", "op": "eq", "value": "H-0001"})


def test_a_predicate_over_a_real_source(source):
    sources, m = source
    adult = {"all": [{"field": "birth_date", "op": "le", "value": "2007-06-01"},
                     {"field": "status", "op": "in", "value": ["married", "single"]}]}
    fields = predicate_fields(adult, m.columns)
    assert fields == ["birth_date", "status"]
    answers = {n: holds(sources.lookup(m.item, n, fields), adult) for n in SAMPLE_ID_NUMBERS}
    assert answers == dict(zip(SAMPLE_ID_NUMBERS, [True, True, False, True, False, False]))


# ---- [[sources]] in node.toml -------------------------------------------------------------------

SOURCES = textwrap.dedent("""\

    [[sources]]
    item = "household-registration"
    kind = "sqlite"
    path = "sources/household.db"
    table = "residents"
    key_column = "id_number"
    fields = { status = "marital_status", household = "household_no" }

    [[sources]]
    item = "residence-permit"
    kind = "csv"
    path = "/srv/permits.csv"
    key_column = "证件号码"
    fields = { district = "所在区" }
""")


def test_config_sources_parse_with_paths_against_the_config_dir(tmp_path):
    config = load_text(tmp_path, MINIMAL + SOURCES)
    household, permit = config.sources
    assert household == SourceConfig(item="household-registration", kind="sqlite",
                                     path=tmp_path.resolve() / "sources/household.db", table="residents",
                                     key_column="id_number",
                                     fields=(("status", "marital_status"), ("household", "household_no")))
    assert household.columns == {"status": "marital_status", "household": "household_no"}
    assert permit.kind == "csv" and permit.table is None and permit.path == Path("/srv/permits.csv")
    assert permit.columns == {"district": "所在区"}
    assert load_text(tmp_path, MINIMAL).sources == ()


def test_config_sources_open_the_sample_data(tmp_path):
    (tmp_path / "sources").mkdir()
    write_sqlite(tmp_path / "sources/household.db")
    config = load_text(tmp_path, MINIMAL + SOURCES.split("\n[[sources]]\nitem = \"residence-permit\"")[0])
    sources = open_sources(config.sources)
    assert sources.lookup("household-registration", TWO, ["household"]) == {"household": "H-0001"}
    with pytest.raises(AdapterError, match="this node has no source for item 'residence-permit'; "
                                           "items: household-registration"):
        sources.lookup("residence-permit", TWO, ["district"])
    sources.close()


@pytest.mark.parametrize("old, new, message", [
    ('kind = "sqlite"', 'kind = "mysql"', '[[sources]] #1 (item "household-registration") kind must be "sqlite" '
                                          'or "csv" (got "mysql")'),
    ('kind = "sqlite"', 'kind = "postgresql"', 'PostgreSQL is not built yet'),
    ('kind = "sqlite"', None, 'kind is missing; add kind = "sqlite" (or "csv")'),
    ('table = "residents"', None, '[[sources]] #1 (item "household-registration") table is missing; '
                                  'add table = "residents"'),
    ('table = "residents"', 'table = "residents; DROP TABLE x"', 'table must be a table name: letters, digits '
                                                                 "and '_'"),
    ('key_column = "id_number"', 'key_column = "id number"', "key_column must be a column name: letters, digits "
                                                             "and '_', not starting with a digit"),
    ('key_column = "id_number"', None, 'key_column is missing; add key_column = "id_number"'),
    ('item = "household-registration"', 'item = "Household Registration"', '[[sources]] #1 item must be a '
                                                                            'catalog item id'),
    ('fields = { status = "marital_status", household = "household_no" }', 'fields = ["marital_status"]',
     'fields must be a non-empty table, e.g. fields = { status = "marital_status" } (item field = "column") '
     '(got an array)'),
    ('fields = { status = "marital_status", household = "household_no" }', 'fields = { Status = "x" }',
     'fields: "Status" is not a field name: lowercase ASCII letters'),
    ('fields = { status = "marital_status", household = "household_no" }', 'fields = { status = 3 }',
     "fields.status must be a column name: letters, digits and '_', not starting with a digit, at most 128 "
     "characters (got 3)"),
    ('fields = { status = "marital_status", household = "household_no" }', 'fields = { id = "id_number" }',
     'fields.id is the key column "id_number": an answer never carries the ID number; remove it'),
    ('path = "sources/household.db"', 'pth = "sources/household.db"', 'unknown key "pth" in [[sources]] #1; '
                                                                      'did you mean "path"?'),
])
def test_config_sources_errors_name_the_key_and_the_fix(tmp_path, old, new, message):
    assert old in SOURCES
    text = SOURCES.replace(old + "\n", "" if new is None else new + "\n", 1)
    assert message in error_of(tmp_path, MINIMAL + text)


def test_config_sources_other_errors(tmp_path):
    csv_with_table = SOURCES.replace('key_column = "证件号码"', 'table = "permits"\nkey_column = "证件号码"')
    assert ('[[sources]] #2 (item "residence-permit") table has no effect with kind = "csv" (the file is the '
            'table); remove it') in error_of(tmp_path, MINIMAL + csv_with_table)
    twice = SOURCES.replace('item = "residence-permit"', 'item = "household-registration"')
    assert '[[sources]] #2 (item "household-registration") appears twice' in error_of(tmp_path, MINIMAL + twice)
    assert "sources must be one or more [[sources]] tables, each with item, kind" in error_of(tmp_path, 'sources = "x.db"\n' + MINIMAL)
