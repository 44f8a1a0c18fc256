"""The customer list batch scoring reads: bad rows are named, not a traceback (no model)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.errors import ContractError
from training.batch import _checked_chunks

REPEATED = ["C1", "C2", "C1", "C3", "C2"]


@pytest.mark.parametrize(("ids", "chunk_size", "problem"), [
    (REPEATED, 100, "2 customer_id(s) appear more than once, e.g. 'C1'; one row per customer"),
    # each chunk one row: the repeat is found when the second C1's chunk is reached
    (REPEATED, 1, "1 customer_id(s) appear more than once, e.g. 'C1'; one row per customer"),
    (["C1", None], 100, "null customer_id"),
])
def test_a_repeated_or_null_customer_id_names_the_file_and_column(tmp_path, ids, chunk_size,
                                                                   problem):
    """A customer twice in a chunk was a traceback ("zip() argument 2 is shorter"); twice in
    two chunks, decided twice (the outcome hung on --chunk-size)."""
    path = tmp_path / "list.parquet"
    pq.write_table(pa.table({"customer_id": pa.array(ids, pa.string())}), path)
    with pytest.raises(ContractError) as caught:
        list(_checked_chunks(pq.ParquetFile(path), path.name, chunk_size=chunk_size))
    assert str(caught.value) == f"list.parquet: column 'customer_id': {problem}"


def test_distinct_customers_pass_in_chunks_of_one(tmp_path):
    path = tmp_path / "list.parquet"
    pq.write_table(pa.table({"customer_id": pa.array(["C1", "C2", "C3"], pa.string())}), path)
    chunks = list(_checked_chunks(pq.ParquetFile(path), path.name, chunk_size=1))
    assert [c.column("customer_id")[0].as_py() for c in chunks] == ["C1", "C2", "C3"]
