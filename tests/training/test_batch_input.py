"""The customer list batch scoring reads: bad rows are named, not a traceback (no model)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.errors import ContractError
from training.batch import _checked_chunks


@pytest.mark.parametrize(("ids", "problem"), [
    (["C1", "C2", "C1", "C3", "C2"],
     "2 customer_id(s) appear more than once, e.g. 'C1'; one row per customer"),
    (["C1", None], "null customer_id"),
])
def test_a_repeated_or_null_customer_id_names_the_file_and_column(tmp_path, ids, problem):
    """A customer twice in a chunk was a traceback ("zip() argument 2 is shorter")."""
    path = tmp_path / "list.parquet"
    pq.write_table(pa.table({"customer_id": pa.array(ids, pa.string())}), path)
    with pytest.raises(ContractError) as caught:
        list(_checked_chunks(pq.ParquetFile(path), path.name, chunk_size=100))
    assert str(caught.value) == f"list.parquet: column 'customer_id': {problem}"
