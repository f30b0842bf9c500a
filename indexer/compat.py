"""Every reach of indexer/ into Lance's internals, where no public route serves. (crawler/ keeps
its own in crawler/compat.py: indexer never imports crawler.)

tests/test_compat.py exercises every seam against the installed pylance; when an upgrade moves
one, that test and the removal that uses it fail here, with one line that says what moved.
Nothing else in indexer/ may touch these names (tests/test_layering.py checks).
"""

import importlib.util
import sys
import threading
from importlib.metadata import version

import pyarrow as pa

# Lance's reader of one data file, below the dataset: how a purge is verified on disk, file by
# file, including files no current version of the table refers to any more. Imported on first
# use: pylance's import is start-up time every other command would pay (store.py imports this).
LanceFileReader = None
_IMPORT_ERROR: Exception | None = None

# LanceDB imports lance_namespace, which imports the models of its generated REST client; the
# client package's __init__ also builds every REST endpoint class, most of LanceDB's import time,
# for a REST catalog a local or object-store gallery never talks to.
LANCE_REST_CLIENT = "lance_namespace_urllib3_client"
_rest_client_lock = threading.Lock()


def defer_lance_rest_client() -> None:
    """Import the REST client package's submodules (the models) on demand, and its __init__ (the
    endpoint classes) only when something asks the package itself for a name. Call it before the
    first `import lancedb`. If a release moves things so that the package is asked for a name at
    import time, everything still works and only the start-up gain is lost (tests/test_compat.py
    says so)."""
    if LANCE_REST_CLIENT in sys.modules:
        return
    spec = importlib.util.find_spec(LANCE_REST_CLIENT)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed, or no longer a package: nothing to defer
    package = importlib.util.module_from_spec(spec)  # __path__ set: submodules import as usual

    def __getattr__(name: str):
        with _rest_client_lock:
            if package.__dict__.pop("__getattr__", None) is not None:
                spec.loader.exec_module(package)  # the real __init__, once
        return getattr(package, name)

    package.__getattr__ = __getattr__
    sys.modules[LANCE_REST_CLIENT] = package


# The row address Lance adds when asked (with_row_id=True), and which a delete predicate may
# name. The exclusion log has no key of its own, and a predicate that spelled out a URL would be
# kept in Lance's transaction files until cleanup: rows are deleted by address instead.
ROW_ID = "_rowid"


class IncompatibleDependency(RuntimeError):
    """An upgraded library no longer has what a seam here relies on."""


def _moved(what: str, exc: Exception) -> IncompatibleDependency:
    return IncompatibleDependency(
        f"pylance {version('pylance')}: {what} has changed ({type(exc).__name__}: {exc}); indexer/compat.py must follow it"
    )


def rows_with_ids(dataset, columns: list[str]) -> pa.Table:
    """`columns` of a Lance dataset, plus each row's address in ROW_ID."""
    try:
        table = dataset.to_table(columns=columns, with_row_id=True)
    except TypeError as exc:
        raise _moved("LanceDataset.to_table(with_row_id=True)", exc) from None
    if ROW_ID not in table.column_names:
        raise _moved(f"the {ROW_ID} column", KeyError(ROW_ID))
    return table


def delete_rows(table, row_ids: list[int]) -> None:
    """Delete rows of a LanceDB table by the addresses rows_with_ids gave."""
    if row_ids:
        table.delete(f"{ROW_ID} IN ({', '.join(str(int(r)) for r in row_ids)})")


def _reader(uri: str, **kwargs):
    global LanceFileReader, _IMPORT_ERROR
    if LanceFileReader is None and _IMPORT_ERROR is None:
        try:
            from lance.file import LanceFileReader
        except ImportError as exc:  # pragma: no cover - only with an incompatible pylance
            _IMPORT_ERROR = exc
    if LanceFileReader is None:
        raise _moved("lance.file.LanceFileReader", _IMPORT_ERROR)
    try:
        return LanceFileReader(uri, **kwargs)
    except TypeError as exc:
        raise _moved("lance.file.LanceFileReader(path, storage_options=, columns=)", exc) from None


def data_file_columns(uri: str, *, storage_options: dict | None) -> list[str]:
    """The column names one Lance data file holds."""
    try:
        return list(_reader(uri, storage_options=storage_options).metadata().schema.names)
    except AttributeError as exc:
        raise _moved("LanceFileReader.metadata().schema", exc) from None


def read_data_file(uri: str, *, storage_options: dict | None, columns: list[str] | None = None) -> pa.Table:
    """One Lance data file (or index file) as a table: every column, or `columns`."""
    reader = _reader(uri, storage_options=storage_options, columns=columns)
    try:
        return reader.read_all().to_table()
    except AttributeError as exc:
        raise _moved("LanceFileReader.read_all().to_table()", exc) from None
