"""TurboGears-style global sessions, finished with the stream.

TurboGears 2 apps use a global ``DBSession = scoped_session(sessionmaker())``
registered with zope.sqlalchemy and the thread-local ``transaction.manager``,
without pyramid_tm. ``tgstream.sqlalchemy.session`` names it; these helpers
flush, commit and remove it when a stream ends (or do it by hand).
"""
from __future__ import annotations

import logging
import threading

from .events import Recorded
from .transaction import current_transaction

log = logging.getLogger('tgstream')


def _thread_local_manager():
    import transaction  # the 'sqlalchemy' extra; only needed on this path

    return transaction.manager


def _dispose(session) -> None:
    remove = getattr(session, 'remove', None)  # scoped_session
    if remove is not None:
        remove()
    else:
        session.close()


def commit_session(session, transaction_manager=None) -> None:
    """Flush ``session``, commit its transaction, then remove the session.

    The by-hand form of what ``tgstream.sqlalchemy.session`` does when a
    stream ends, for code that manages its own (zope.sqlalchemy-registered)
    session. On a failed flush or commit the transaction is aborted, the
    session removed and the error re-raised. ``transaction_manager``
    defaults to the thread-local ``transaction.manager``.
    """
    manager = transaction_manager or _thread_local_manager()
    try:
        session.flush()
        txn = current_transaction(manager)
        if txn is not None:
            if txn.isDoomed():
                txn.abort()
            else:
                txn.commit()
    except BaseException:
        abort_session(session, manager)
        raise
    _dispose(session)


def abort_session(session, transaction_manager=None) -> None:
    """Abort ``session``'s transaction and remove the session."""
    manager = transaction_manager or _thread_local_manager()
    try:
        txn = current_transaction(manager)
        if txn is not None:
            txn.abort()
    finally:
        _dispose(session)


class SessionFinisher:
    """``tgstream.sqlalchemy.session``: finish a global session with the stream.

    When pyramid_tm manages the request, the transaction is its (and the
    stream's) business and the session is only removed at the end. Without
    pyramid_tm the session is flushed and ``transaction.manager`` committed
    when the stream is exhausted, aborted when it fails or is closed early,
    and removed in every case.
    """

    def __init__(self, session, managed: bool):
        self.session = session
        self.managed = managed
        self.committed = False
        self.thread_id = threading.get_ident()

    def commit(self) -> None:
        """The stream is exhausted: flush and commit (without pyramid_tm)."""
        commit_session(self.session)
        self.committed = True

    def close(self, name: str) -> Recorded | None:
        """The stream ``name`` was closed: abort what is still open, remove
        the session; return the transaction's final state (``None`` when
        pyramid_tm manages it, or when closed on another thread)."""
        if threading.get_ident() != self.thread_id:
            # scoped sessions and transaction.manager are thread-local: on
            # another thread (garbage collection) they are someone else's.
            log.warning(
                'stream %s was closed on another thread; its thread-local '
                'session was left to that thread\'s next request', name
            )
            return None
        if self.managed:
            _dispose(self.session)
            return None
        if not self.committed:
            abort_session(self.session)
            return Recorded.ABORTED
        return Recorded.COMMITTED
