"""structlog, configured once per process: JSON when not on a terminal, key=value on one.

Context (request_id, tenant_id, message_id, job_id) is bound with structlog's contextvars,
and the stdlib loggers of the libraries are routed through the same renderer. Nothing
logs bodies, headers, keys or secrets: callers pass ids and counts only.

Our own lines do not go through the stdlib `logging` machinery: the API writes one per
request, and a LogRecord, the handler and the formatter cost 18 µs of it against 8 µs for
structlog writing the same line itself (ops/bench timeit, ~5% of a single send's API CPU).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's line writer, with the name `get_logger(name)` was given, so the
    `logger` field says where a line came from as the stdlib loggers' lines do."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def _logger_factory(*args: Any) -> _NamedWriteLogger:
    # sys.stderr looked up per logger, not once: tests and the CLI may swap it.
    return _NamedWriteLogger(sys.stderr, str(args[0]) if args else "")


# JSON lines through msgspec: 6.5 µs a request line against 8.8 µs with json.dumps (ops/bench
# timeit). What it cannot encode is written as its repr, as structlog does by default;
# ids and times come out as their text, not as a repr.
_json = msgspec.json.Encoder(enc_hook=repr)


def _dumps(value: Any, **_: Any) -> str:
    return _json.encode(value).decode()


# procrastinate's records that repeat for every job, by their `action` extra: the periodic
# tasks (receipts and callbacks every second, upkeep every few) would write about eight
# lines a second into an idle gateway's log. They are DEBUG lines here. What a job did is
# our own INFO line (`receipts.applied`, `partitions.created`, ...); a failed job
# (`job_error`, `job_error_retry`), a worker's start and stop, and every warning and
# error of procrastinate keep their level.
ROUTINE_ACTIONS = frozenset(
    {
        "start_job",  # "Starting job ..." (procrastinate.worker.<name>)
        "job_success",  # "Job ... ended with status: Success" (procrastinate.worker)
        "periodic_task_deferred",  # "Periodic job ... deferred" (procrastinate.periodic)
        "jobs_deferred",  # "Deferred 1 job" (procrastinate.jobs, Task.defer_async)
        # The task table read at every worker start: the code, not the running system.
        "registering_periodic_task",  # procrastinate.periodic
        "loading_blueprint",  # procrastinate.blueprints
    }
)


class _RoutineToDebug(logging.Filter):
    """Rewrites procrastinate's per-job INFO records to DEBUG, then lets them through
    only when the process logs DEBUG. A handler filter, not a logger one: the records
    come from procrastinate.worker's child loggers too, which a logger filter misses."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.INFO
            and record.name.startswith("procrastinate.")
            and getattr(record, "action", None) in ROUTINE_ACTIONS
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


def wants_json(json: bool | None, stream: TextIO | None = None) -> bool:
    """JSON lines unless they go to a terminal (``stream``, by default stderr, where
    every process writes its log); ``json`` (SMSGW_LOG_JSON), when set, decides."""
    if json is not None:
        return json
    return not (stream if stream is not None else sys.stderr).isatty()


def configure(*, json: bool | None = None, level: str = "INFO") -> None:
    as_json = wants_json(json)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_logger_factory,
        # A line below the level costs a method call that returns at once.
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.addFilter(_RoutineToDebug(numeric_level))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; callback URLs may carry tenant tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


# granian's own loggers (start-up, worker restarts, crashes) handed to the root logger,
# so they come out in the same format as ours (JSON in production) instead of granian's
# plain text. Passed as granian's `log_dictconfig`, which it merges over its defaults.
GRANIAN_LOG_CONFIG: dict[str, object] = {
    "formatters": {},
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    },
}
