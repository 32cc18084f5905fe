"""One failed stream, one traceback in the log.

tgstream logs a failed stream itself (``stream ... failed for GET /path:
outcome=error ...`` with the traceback), then raises the error to the server
so that it cuts the response. The server logs it again (waitress:
``Exception while serving /path``, gunicorn: ``Error handling request``),
with a second full traceback. :class:`ServerLogFilter` keeps that second
record to one short line naming the error, for exceptions tgstream has
already logged; every other record passes untouched.

It is opt-in (``config.include('tgstream')`` leaves other libraries' loggers
alone). Either set ``tgstream.shorten_server_log = true`` (the filter is
added to the ``waitress`` and ``gunicorn.error`` loggers when the
configuration is committed), or name the filter in a ``logging.dictConfig``::

    'filters': {'tgstream': {'()': 'tgstream.serverlog.ServerLogFilter'}},
    'loggers': {'waitress': {'filters': ['tgstream'], ...}},
"""
from __future__ import annotations

import logging

#: the loggers servers report an application's exception on
SERVER_LOGGERS = ('waitress', 'gunicorn.error')
_LOGGED = '_tgstream_logged'


def mark_logged(exc: BaseException) -> None:
    """Remember that tgstream has logged ``exc`` with its traceback."""
    try:
        setattr(exc, _LOGGED, True)
    except (AttributeError, TypeError):  # pragma: no cover - exotic exceptions
        pass


class ServerLogFilter(logging.Filter):
    """Shorten a server's record about an exception tgstream already logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and getattr(exc, _LOGGED, False):
            first_line = (str(exc).splitlines() or [''])[0]
            record.msg = '%s: %s: %s (a failed stream; tgstream logged its traceback)' % (
                record.getMessage(), type(exc).__name__, first_line,
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def install_server_log_filter(names: tuple[str, ...] = SERVER_LOGGERS) -> None:
    """Add :class:`ServerLogFilter` to the loggers ``names`` (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ServerLogFilter) for f in logger.filters):
            logger.addFilter(ServerLogFilter())
