"""Fictitious residents for demos and tests: a household-registration table
as SQLite and as CSV (docs/design.md, "Data-source adapters").

Every name and ID number in the repository's sample data is listed here, so
a scan for personal data can tell them apart from real ones: the names are
obviously invented, the ID numbers have sequence numbers 901-906 and pass
the GB 11643 check character. Run `python -m node.adapters.sample DIR` to
write DIR/household.db and DIR/household.csv.
"""
from __future__ import annotations

import csv
import sqlite3
import sys
from pathlib import Path

COLUMNS = ("id_number", "full_name", "marital_status", "household_no", "district", "birth_date", "household_size")

RESIDENTS = (
    ("110101199003079016", "Sample Resident One", "married", "H-0001", "Dongcheng", "1990-03-07", 3),
    ("110101198511229020", "Sample Resident Two", "married", "H-0001", "Dongcheng", "1985-11-22", 3),
    ("370102197806159031", "Sample Resident Three", "divorced", "H-0002", "Lixia", "1978-06-15", 1),
    ("370102199501019045", "Sample Resident Four", "single", "H-0003", "Lixia", "1995-01-01", 2),
    ("370102200708309053", "Sample Resident Five", "single", "H-0003", "Lixia", "2007-08-30", 2),
    ("110101196202149060", "Sample Resident Six", "widowed", "H-0004", "Dongcheng", "1962-02-14", 1),
)

SAMPLE_ID_NUMBERS = tuple(r[0] for r in RESIDENTS)
SAMPLE_NAMES = tuple(r[1] for r in RESIDENTS)

SOURCES_TOML = """\
[[sources]]
item = "household-registration"
kind = "sqlite"
path = "{dir}/household.db"
table = "residents"
key_column = "id_number"
fields = {{ status = "marital_status", household = "household_no", district = "district", birth_date = "birth_date", household_size = "household_size" }}
"""


def write_sqlite(path: Path) -> Path:
    """A new SQLite file with table `residents` (refuses an existing file)."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; remove it or choose another path")
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE residents (id_number TEXT PRIMARY KEY, full_name TEXT, marital_status TEXT, "
                   "household_no TEXT, district TEXT, birth_date TEXT, household_size INTEGER)")
        db.executemany(f"INSERT INTO residents VALUES ({', '.join('?' * len(COLUMNS))})", RESIDENTS)
        db.commit()
    finally:
        db.close()
    return path


def write_csv(path: Path) -> Path:
    """The same table as CSV with a header row (refuses an existing file)."""
    path = Path(path)
    with open(path, "x", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(RESIDENTS)
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "sources")
    out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {write_sqlite(out / 'household.db')} and {write_csv(out / 'household.csv')}; in node.toml:\n")
    print(SOURCES_TOML.format(dir=out))
