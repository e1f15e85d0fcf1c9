"""Statements of the hot paths, compiled once per dialect and run on the driver's own cursor.

``conn.execute(statement, params)`` costs ~50 µs of SQLAlchemy per statement even when the
statement is built once and its compiled form is cached (cache key, execution context, parameter
processing, result wrapping); the driver itself takes ~10 µs for an indexed write on SQLite. A
refund runs ~20 statements, so on the apply path that was most of the time
(bench/apply_bench.py). A :class:`Prepared` keeps the Core statement as the single definition —
built from the tables in ``store.tables``, compiled by SQLAlchemy for each dialect — and runs its
SQL text on the driver's own connection (``conn.connection.dbapi_connection``: refundry's
drivers, sqlite3 and psycopg, are synchronous, so it is the driver's) inside the connection's
transaction.

What is kept from ``Connection.execute``:
  * bind processors (``UTCDateTime`` and the like) run on every parameter, result processors on
    every column of a returned row;
  * the engine's ``before_cursor_execute`` / ``after_cursor_execute`` listeners are called
    (context ``None``; a listener's returned statement or parameters are not used), so
    instrumentation and the tests' statement counters still see every statement;
  * driver errors go through SQLAlchemy's own handler: the same ``sqlalchemy.exc`` classes
    (``IntegrityError``…), disconnects invalidate the connection and the pool.

Cursors are not closed explicitly: a client-side cursor read to its end holds no resource (it
is freed with the object), and its row count stays readable, by ``run_expecting`` after a
pipeline and by cursor-event listeners.

What is not supported (refused when the statement is prepared): expanding ``IN`` parameters,
Python-side column defaults (``Column(default=…)``: use ``server_default``). Relies on
SQLAlchemy internals (``_bind_processors``, ``_handle_dbapi_exception``): pinned to 2.0–2.1 in
pyproject.toml, and tests/store/test_prepared.py checks each on both databases.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, Date, DateTime, Dialect, Integer, String
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["Later", "Prepared", "driver_in_transaction", "pipelined", "run_driver_sql"]

Processor = Callable[[Any], Any]
_REQUIRED = object()
# Types whose Python values are immutable: their bind processor may answer from memory.
_IMMUTABLE = (DateTime, Date, String, Integer)


def _remembering(proc: Processor) -> Processor:
    """``proc`` answering again without work for the very value object it was last given
    (a refund binds the same ``at`` datetime to a dozen rows). Only for immutable values."""
    last: list[tuple[Any, Any]] = [(_REQUIRED, None)]

    def run(value: Any) -> Any:
        seen, out = last[0]  # one tuple: read and written atomically across threads
        if seen is value:
            return out
        out = proc(value)
        last[0] = (value, out)
        return out

    return run


@dataclass(frozen=True, slots=True)
class _Form:
    """A statement as one dialect runs it."""

    sql: str
    positional: bool  # qmark/format: a sequence in the parameters' order; else a dict
    driver_names: tuple[str, ...]  # the parameters, as the SQL text spells them (escaped)
    take: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # their values from the caller's keys
    bind: tuple[tuple[int, Processor], ...]  # (position among the parameters, processor)
    fixed: dict[str, Any]  # values bound in the statement itself (literals), by name
    row_type: Any  # namedtuple of the result columns, None if the statement returns none
    result: tuple[tuple[int, Processor], ...]  # (result column, processor)
    pipelines: bool  # the dialect may run it inside a pipeline (PostgreSQL): see pipelined()

    def parameters(self, params: Mapping[str, Any]) -> Any:
        if self.fixed:
            params = {**self.fixed, **params}
        values: Any = self.take(params)
        if self.bind:
            values = list(values)
            for i, proc in self.bind:
                values[i] = proc(values[i])
        if self.positional:
            return values  # a tuple, or the list just processed: both are parameter sequences
        return dict(zip(self.driver_names, values, strict=True))

    def parameters_many(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """``[self.parameters(p) for p in rows]``, without a call per row."""
        if self.fixed:
            rows = [{**self.fixed, **p} for p in rows]
        values: list[Any] = list(map(self.take, rows))
        if self.bind:
            bind = self.bind
            processed = []
            for v in values:
                v = list(v)
                for i, proc in bind:
                    v[i] = proc(v[i])
                processed.append(v)
            values = processed
        if self.positional:
            return values
        names = self.driver_names
        return [dict(zip(names, v, strict=True)) for v in values]

    def row(self, raw: Sequence[Any]) -> Any:
        if not self.result:
            return self.row_type._make(raw)
        values = list(raw)
        for i, proc in self.result:
            if values[i] is not None:
                values[i] = proc(values[i])
        return self.row_type._make(values)


class Prepared:
    """``Prepared(statement)``; then ``run`` / ``run_many`` / ``rows`` / ``first`` on a
    Connection inside its transaction. An INSERT writes the columns its parameters name (the
    first row's, with ``run_many``), as ``Connection.execute`` does; its compiled form is kept
    per dialect and set of names."""

    __slots__ = ("_by_dialect", "_forms", "_insert", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._insert = bool(getattr(statement, "is_insert", False))
        self._forms: dict[tuple[str, tuple[str, ...]], _Form] = {}  # INSERTs: per column set
        self._by_dialect: dict[str, _Form] = {}  # the rest

    def _form(self, dialect: Dialect, params: Mapping[str, Any]) -> _Form:
        if not self._insert:
            form = self._by_dialect.get(dialect.name)
            if form is None:
                form = self._by_dialect[dialect.name] = self._compile(dialect, None)
            return form
        key = (dialect.name, tuple(params))
        form = self._forms.get(key)
        if form is None:
            form = self._forms[key] = self._compile(dialect, list(key[1]))
        return form

    def _compile(self, dialect: Dialect, column_keys: list[str] | None) -> _Form:
        compiled = self.statement.compile(dialect=dialect, column_keys=column_keys)
        assert isinstance(compiled, SQLCompiler)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(f"Python-side column defaults are not supported: {compiled.string}")
        binds = compiled.binds
        if any(bp.expanding for bp in binds.values()):
            raise ValueError(f"expanding IN parameters are not supported: {compiled.string}")
        if compiled.positiontup is not None:
            names = tuple(compiled.positiontup)
            positional = True
        else:
            names = tuple(compiled.bind_names[bp] for bp in binds.values())
            positional = False
        escaped: dict[str, str] = dict(compiled.escaped_bind_names or {})
        processors = compiled._bind_processors
        row_type: Any = None
        result: list[tuple[int, Processor]] = []
        columns = compiled._result_columns
        if columns:
            keys = [c[0] for c in columns]
            row_type = namedtuple("Row", keys, rename=True)  # type: ignore[misc,no-redef]
            for i, c in enumerate(columns):
                out = c[3].dialect_impl(dialect).result_processor(dialect, None)
                if out is not None:
                    result.append((i, out))
        bind = []
        for i, name in enumerate(names):
            proc = cast(Processor | None, processors.get(name))
            if proc is not None:
                immutable = binds[name].type._type_affinity in _IMMUTABLE
                bind.append((i, _remembering(proc) if immutable else proc))
        if len(names) == 1:
            only = names[0]
            take: Callable[[Mapping[str, Any]], tuple[Any, ...]] = lambda p: (p[only],)  # noqa: E731
        elif names:
            take = itemgetter(*names)
        else:
            take = lambda _p: ()  # noqa: E731
        return _Form(
            sql=compiled.string,
            positional=positional,
            driver_names=tuple(escaped.get(n, n) for n in names),
            take=take,
            bind=tuple(bind),
            fixed={n: bp.effective_value for n, bp in binds.items() if not bp.required},
            row_type=row_type,
            result=tuple(result),
            pipelines=dialect.name == "postgresql",
        )

    # --- running ---------------------------------------------------------------------------------

    def _execute(self, conn: Connection, params: Any, many: bool) -> tuple[_Form, Any]:
        form = self._form(conn.dialect, params[0] if many else params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        sql = form.sql
        if many:
            parameters: Any = form.parameters_many(params)
        else:
            parameters = form.parameters(params)
        dispatch = conn.dispatch
        if dispatch.before_cursor_execute:  # listeners of the connection or its engine
            for fn in dispatch.before_cursor_execute:
                fn(conn, cursor, sql, parameters, None, many)
        try:
            if many:
                cursor.executemany(sql, parameters)
            else:
                cursor.execute(sql, parameters)
        except BaseException as exc:  # SQLAlchemy's handler wraps and re-raises it
            conn._handle_dbapi_exception(exc, sql, parameters, cursor, None)
        if dispatch.after_cursor_execute:
            for fn in dispatch.after_cursor_execute:
                fn(conn, cursor, sql, parameters, None, many)
        return form, cursor

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Execute; returns the driver's row count (-1 inside :func:`pipelined`, where it is not
        known yet: use ``run_expecting`` to check it)."""
        form, cursor = self._execute(conn, params or {}, False)
        return -1 if form.pipelines and _pipeline_of(conn) is not None else int(cursor.rowcount)

    def run_expecting(
        self, conn: Connection, params: Mapping[str, Any], rows: int, otherwise: Exception
    ) -> None:
        """Execute; raise ``otherwise`` unless it touched exactly ``rows`` rows (inside
        :func:`pipelined`: when the pipeline's answers are in, before the block ends)."""
        form, cursor = self._execute(conn, params, False)
        pipe = _pipeline_of(conn) if form.pipelines else None
        if pipe is not None:
            pipe.checks.append((cursor, rows, otherwise))
        elif cursor.rowcount != rows:
            raise otherwise

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Execute once per parameter set (the driver's ``executemany``); returns the rows
        touched, summed over the sets (sqlite3 and psycopg both sum them)."""
        if not rows:
            return 0
        return int(self._execute(conn, rows, True)[1].rowcount)

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row the statement returns (SELECT, or RETURNING), processed, as named tuples."""
        return self.later(conn, params).rows()

    def later(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Later:
        """Execute; the rows are read when asked for (inside :func:`pipelined`: without
        waiting for them now). Outside a pipeline they are read at once."""
        form, cursor = self._execute(conn, params or {}, False)
        answer = Later(conn, form, cursor, params)
        if not form.pipelines or _pipeline_of(conn) is None:
            answer.rows()
        return answer

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first returned row, or None."""
        return self.later(conn, params).first()


def run_driver_sql(conn: Connection, sql: str) -> None:
    """Run a statement without parameters or results (``BEGIN IMMEDIATE``) on the driver's
    cursor, driver errors mapped as for :class:`Prepared`; no cursor events."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    except BaseException as exc:  # SQLAlchemy's handler wraps and re-raises it
        conn._handle_dbapi_exception(exc, sql, (), cursor, None)
    cursor.close()


def driver_in_transaction(conn: Connection) -> bool:
    """The driver's own view: is a transaction open on it (begun by ``run_driver_sql`` or by
    SQLAlchemy)? True for a connection that has lost its driver connection."""
    driver = conn.connection.dbapi_connection
    return driver is None or bool(driver.in_transaction)


# --- pipelining (PostgreSQL) -------------------------------------------------------------------


class Later:
    """The rows of a statement sent by ``Prepared.later``, read on first use."""

    __slots__ = ("_conn", "_cursor", "_form", "_params", "_rows")

    def __init__(self, conn: Connection, form: _Form, cursor: Any, params: Any = None) -> None:
        self._conn, self._form, self._cursor, self._params = conn, form, cursor, params
        self._rows: list[Any] | None = None

    def rows(self) -> list[Any]:
        if self._rows is None:
            try:
                raw = self._cursor.fetchall()
            except BaseException as exc:
                self._conn._handle_dbapi_exception(
                    exc, self._form.sql, self._params, self._cursor, None
                )
            self._rows = [self._form.row(r) for r in raw]
        return self._rows

    def first(self) -> Any:
        found = self.rows()
        return found[0] if found else None


_PIPELINE = "refundry_pipeline"  # key of the pipeline in the pooled connection's info


@dataclass(slots=True)
class _Pipeline:
    checks: list[tuple[Any, int, Exception]] = field(default_factory=list)


def _pipeline_of(conn: Connection) -> _Pipeline | None:
    info = conn.connection.info
    return info.get(_PIPELINE) if info else None


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the block's Prepared statements are sent without waiting for each one's
    answer (psycopg's pipeline mode): a transaction of twenty statements waits for the server a
    few times instead of twenty. A statement whose rows are fetched (``rows``, ``first``)
    waits for its own answer; the rest are awaited at the end of the block, where the row counts
    given to ``run_expecting`` are checked. An error of any statement aborts the rest and is
    raised by the block as a ``sqlalchemy.exc`` error; the caller's transaction must then be
    rolled back, as after any failed statement. Elsewhere (SQLite: no round trips) and when
    already inside a pipeline, the block runs as it is."""
    if conn.dialect.name != "postgresql" or _pipeline_of(conn) is not None:
        yield
        return
    fairy = conn.connection
    driver = fairy.driver_connection
    assert driver is not None
    pipe = _Pipeline()
    fairy.info[_PIPELINE] = pipe
    try:
        with driver.pipeline():
            yield
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, None, None, None, None)
    finally:
        del fairy.info[_PIPELINE]
    for cursor, rows, otherwise in pipe.checks:
        if cursor.rowcount != rows:
            raise otherwise
