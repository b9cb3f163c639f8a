"""How every service process starts and stops, written once.

A service's ``__main__`` keeps only its own wiring: a ``build(settings)`` function that
creates its clients and components and returns the function that runs them. ``run_service``
does the rest the same way everywhere:

- settings are loaded once; a ``ConfigError`` prints ``<name>: invalid configuration: …``
  (naming the field) and exits 2;
- logging is configured from ``settings.log_level`` (chatty third-party loggers quieted);
- ``build`` raising ``ConfigError`` exits 2, raising a ``RouteIQError`` (or one of the
  ``startup_errors`` a client library raises for an unreachable endpoint) prints
  ``<name>: cannot start: …`` and exits 1;
- otherwise the returned runner's exit code is the process's.

``run_command`` is the same for a command-line entry point (the operator CLI, the trainer's
MLproject steps): a RouteIQ error is a message and an exit code, never a traceback.

``http_server`` and ``serve_http`` are the uvicorn part (graceful drain on SIGTERM/SIGINT, then
the service's own clean-up); ``stop_on_signals`` is the same for a plain worker loop.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from routeiq.dependencies import fold_repeats
from routeiq.errors import ConfigError, IncompatibleSchemaError, RouteIQError

if TYPE_CHECKING:
    import uvicorn

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that narrate every HTTP call at INFO (the registry client uses httpx).
QUIET_LOGGERS = ("httpx",)
# uvicorn's own exit code for a server that could not start (port taken, bad host).
SERVER_DID_NOT_START = 3


S = TypeVar("S")
Runner = Callable[[], int]


def configure_logging(level: str = "info", *, quiet: Iterable[str] = ()) -> None:
    """Root logging for a service process; ``quiet`` loggers only report errors, and a
    failure that repeats (a retry loop) is logged once per minute, not once per retry."""
    root = logging.getLogger()
    existing = list(root.handlers)
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    # Only the handler basicConfig added: one already there (a test runner's) is not ours.
    fold_repeats(h for h in root.handlers if h not in existing)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)


def run_service(
    name: str,
    load: Callable[[], S],
    build: Callable[[S], Runner],
    *,
    startup_errors: tuple[type[BaseException], ...] = (),
    quiet_loggers: Iterable[str] = (),
    configure_logs: bool = True,
) -> int:
    """Load settings, configure logging, build the service and run it; the exit code.

    ``startup_errors`` are third-party exceptions that mean "a dependency is not usable"
    while building (for example minio's ``urllib3`` errors); they exit 1 like a
    ``RouteIQError``. A service whose framework owns logging passes ``configure_logs=False``.
    """
    try:
        settings = load()
    except ConfigError as exc:
        print(f"{name}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if configure_logs:
        configure_logging(str(getattr(settings, "log_level", "info")), quiet=quiet_loggers)
    dependency_errors: tuple[type[BaseException], ...] = (RouteIQError, *startup_errors)
    try:
        runner = build(settings)
    except ConfigError as exc:
        print(f"{name}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except dependency_errors as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        return 1
    return runner()


def run_command(command: Callable[[], object], *, config_exits_2: bool = False) -> None:
    """Run a command-line entry point (a click group in standalone mode): a ``RouteIQError``
    prints ``error: …`` on stderr (an incompatible schema's reasons under it) and exits 1.

    ``config_exits_2``: a ``ConfigError`` prints ``invalid configuration: …`` and exits 2, as
    a service's start does (``run_service``); otherwise it is reported like any other error.
    """
    try:
        command()
    except RouteIQError as exc:
        if config_exits_2 and isinstance(exc, ConfigError):
            print(f"invalid configuration: {exc}", file=sys.stderr)
            sys.exit(2)
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, IncompatibleSchemaError):
            for reason in exc.reasons:
                print(f"  - {reason}", file=sys.stderr)
        sys.exit(1)


def http_server(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "warning",
    access_log: bool | None = None,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` (not started); one access-log line per request only at
    ``debug`` unless ``access_log`` says otherwise."""
    # Imported here: the labeler (Faust) has no uvicorn, and libs must import without it.
    import uvicorn

    if access_log is None:
        access_log = log_level == "debug"
    return uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log)
    )


def serve_http(server: uvicorn.Server, *, on_stop: Callable[[], None] | None = None) -> int:
    """Run ``server`` in this thread until SIGTERM/SIGINT, then ``on_stop``; the exit code.

    uvicorn drains in-flight requests on a signal and then re-raises that signal. A no-op
    handler installed first keeps the re-raise from killing the process before ``on_stop``
    (flush a spool, leave a consumer group) has run. 0 after a clean stop,
    ``SERVER_DID_NOT_START`` when the server never listened.
    """
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    try:
        server.run()
    finally:
        if on_stop is not None:
            on_stop()
    return 0 if server.started else SERVER_DID_NOT_START


def serve_in_background(server: uvicorn.Server, *, name: str) -> threading.Thread:
    """Run ``server`` on a daemon thread (a worker loop owns the main thread)."""
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    return thread


def stop_on_signals(log: logging.Logger, what: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a loop that finishes ``what`` before stopping."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping %s", signum, what)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
