"""Iceberg tables read back by readers nobody here wrote.

pyiceberg creates a namespace and a table shaped like a topic's records, appends
rows, and DuckDB reads them back, twice: through Apache Iceberg's own REST catalog
server (the `iceberg_rest` fixture: RESTCatalogServer, JdbcCatalog on sqlite,
metadata written by Hadoop's local file system) and through pyiceberg's SQL
catalog on sqlite. DuckDB reads both pyiceberg's scan and, with its own Parquet
reader, the data files the table's metadata lists. No broker runs here: this
proves the readers and the fixture that the broker's table tests rely on.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

SCHEMA = Schema(
    NestedField(1, "topic", StringType(), required=True),
    NestedField(2, "partition", IntegerType(), required=True),
    NestedField(3, "offset", LongType(), required=True),
    NestedField(4, "ts", TimestamptzType(), required=True),
    NestedField(5, "value", BinaryType(), required=False),
)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
# (topic, partition, offset, ts, value): a null value (a tombstone), an empty one,
# bytes that are not UTF-8.
ROWS = [
    ("orders", 0, 0, T0, b"first"),
    ("orders", 0, 1, T0 + dt.timedelta(milliseconds=1), b"\x00\xff\xfe"),
    ("orders", 1, 0, T0 + dt.timedelta(seconds=2), None),
    ("payments", 0, 41, T0 + dt.timedelta(days=1), b""),
]

# What DuckDB says the columns are.
DUCKDB_TYPES = [
    ("topic", "VARCHAR"),
    ("partition", "INTEGER"),
    ("offset", "BIGINT"),
    ("ts", "TIMESTAMP WITH TIME ZONE"),
    ("value", "BLOB"),
]


def epoch_us(ts: dt.datetime) -> int:
    return (ts - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


# The rows as DuckDB returns them below: ts as microseconds since the epoch (no time
# zone library involved), in (topic, partition, offset) order.
EXPECTED = sorted((t, p, o, epoch_us(ts), v) for t, p, o, ts, v in ROWS)

SELECT = (
    'SELECT topic, "partition", "offset", epoch_us(ts), value FROM {} '
    'ORDER BY topic, "partition", "offset"'
)


def local_path(location: str) -> Path:
    """A file:// location (or a bare path) as a local path."""
    parsed = urlparse(location)
    assert parsed.scheme in ("", "file"), f"not a local location: {location}"
    return Path(parsed.path)


def write_and_read(catalog: Catalog, warehouse: Path) -> None:
    catalog.create_namespace("lake")
    table = catalog.create_table("lake.records", schema=SCHEMA)
    arrow = pa.Table.from_pylist(
        [dict(zip(("topic", "partition", "offset", "ts", "value"), r)) for r in ROWS],
        schema=SCHEMA.as_arrow(),
    )
    table.append(arrow)

    # A fresh load sees the commit, and everything it names is a local file in the
    # warehouse.
    table = catalog.load_table("lake.records")
    assert local_path(table.metadata_location).is_file(), table.metadata_location
    assert local_path(table.metadata_location).is_relative_to(warehouse)
    data_files = [local_path(task.file.file_path) for task in table.scan().plan_files()]
    assert data_files, "the append wrote no data file"
    for f in data_files:
        assert f.is_file() and f.is_relative_to(warehouse), f

    # DuckDB over pyiceberg's scan.
    con = table.scan().to_duckdb("records")
    assert [(c[0], c[1]) for c in con.execute("DESCRIBE records").fetchall()] == DUCKDB_TYPES
    assert con.execute(SELECT.format("records")).fetchall() == EXPECTED

    # DuckDB's own Parquet reader on the data files.
    files = ", ".join(f"'{f}'" for f in data_files)
    con = duckdb.connect()
    assert con.execute(SELECT.format(f"read_parquet([{files}])")).fetchall() == EXPECTED


def test_rest_catalog_table_read_by_duckdb(iceberg_rest):
    catalog = load_catalog("rest", type="rest", uri=iceberg_rest.uri)
    write_and_read(catalog, iceberg_rest.warehouse)
    # The server itself keeps the table: a second client sees it.
    again = load_catalog("rest2", type="rest", uri=iceberg_rest.uri)
    assert ("lake", "records") in again.list_tables("lake")
    assert (iceberg_rest.warehouse / "catalog.db").is_file()


def test_sql_catalog_table_read_by_duckdb(tmp_path):
    warehouse = (tmp_path / "warehouse").resolve()
    warehouse.mkdir()
    catalog = load_catalog(
        "sql",
        type="sql",
        uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=f"file://{warehouse}",
    )
    write_and_read(catalog, warehouse)
