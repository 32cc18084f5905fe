"""Ending every live stream on SIGTERM, before the server's graceful timeout.

gunicorn (master or worker) and process managers stop a process with
SIGTERM; a live stream would otherwise run until the server's graceful
timeout cuts it. :func:`install` (run by ``config.include('tgstream')`` in
the thread that loads the app: a gunicorn worker's main thread, pserve's)
chains a handler in front of the one in place: it stops every hub of the
process -- each stream ends with a ``retry:`` field with jitter -- then runs
the previous handler (gunicorn's, which lets the worker finish its
requests). With the default action (waitress, pserve) it waits until the
streams ended (at most :data:`GRACE` seconds), then lets the default action
end the process. Caveat: with ``gunicorn --preload`` the app is loaded
before gunicorn installs its handlers, which replace this one: call
``tgstream.live.stop_hub()`` from a ``worker_int``/``worker_exit`` hook.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import weakref
from typing import Any

#: seconds a process with the default SIGTERM action waits for its streams
GRACE = 3.0

_hubs: Any = weakref.WeakSet()
_installed = False


def register(hub: Any) -> None:
    """Stop ``hub`` on SIGTERM."""
    _hubs.add(hub)


def install() -> bool:
    """Chain the SIGTERM handler (once per process; only from the main
    thread, where Python allows it). Returns whether it is in place."""
    global _installed
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: _terminate(previous, signum, frame))
    except (ValueError, OSError):  # pragma: no cover - not the main thread after all
        return False
    _installed = True
    return True


def _terminate(previous: Any, signum: int, frame: Any) -> None:
    hubs = list(_hubs)
    for hub in hubs:
        hub.stop(timeout=0)  # wakes every stream: each ends at once
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        # (only the main thread may set handlers: now; a second SIGTERM
        # during the grace ends the process at once)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

        def end() -> None:
            deadline = time.monotonic() + GRACE
            while any(h.stream_count() for h in hubs) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)  # the last writes
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=end, name='tgstream-live-sigterm', daemon=True).start()
