"""Transactions that span a stream.

pyramid_tm commits when the view returns, before the server iterates the
body. tgstream wraps whatever ``tm.manager_hook`` the app configured, so
``request.tm`` is a :class:`StreamTransactionManager`: it delegates
everything to the app's manager, except that once a stream is attached to
the request, pyramid_tm's ``commit()``/``abort()`` only *record* pyramid_tm's
decision. The stream carries it out when it ends:

- exhausted: commit (unless pyramid_tm decided to abort or the transaction
  is doomed), inside the ``next()`` that found the end, before the closing
  bytes -- a commit error cuts the response;
- raised or closed early: abort.

With the ``view`` policy pyramid_tm finishes at view return as usual and the
stream runs in a transaction of its own, begun at its first ``next()``.
"""
from __future__ import annotations

import logging
from typing import Any

from pyramid.threadlocal import get_current_request

from .events import Recorded

log = logging.getLogger('tgstream')

try:
    import transaction as _transaction
    from transaction.interfaces import NoTransaction
except ImportError:  # pragma: no cover - transaction is an optional extra
    _transaction = None
    NoTransaction = LookupError

#: environ key of the :class:`StreamTransaction` of a streaming request
HOLDER_KEY = 'tgstream.transaction'


def _is_open(txn) -> bool:
    # Transaction._free() drops _manager once the transaction is committed
    # or aborted, by whoever did it (user code calling transaction.commit()
    # in a stream, TurboGears style, included).
    return txn is not None and getattr(txn, '_manager', None) is not None


class StreamTransactionManager:
    """``request.tm`` while tgstream is included: the app's manager, deferred.

    Every attribute is the wrapped manager's, except that the first
    ``commit()``/``abort()`` after a stream was attached -- pyramid_tm's
    decision at tween egress -- is recorded for the stream to carry out.
    """

    def __init__(self, manager):
        self.manager = manager
        self.holder: StreamTransaction | None = None
        self.doomed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.manager, name)

    def begin(self):
        txn = self.manager.begin()
        if self.holder is not None:
            self.holder.txn = txn
        return txn

    def commit(self):
        holder = self.holder
        if holder is not None and holder.decision is None:
            holder.decision = 'commit'
            return None
        return self.manager.commit()

    def abort(self):
        holder = self.holder
        if holder is not None and holder.decision is None:
            holder.decision = 'abort'
            return None
        return self.manager.abort()

    def doom(self):
        self.doomed = True
        return self.manager.doom()

    def __enter__(self):
        return self.begin()

    def __exit__(self, etype, value, tb):
        if etype is None:
            self.commit()
        else:
            self.abort()

    def __repr__(self) -> str:
        return '<tgstream.StreamTransactionManager for %r>' % (self.manager,)


def wrap_manager_hook(config) -> None:
    """Make ``request.tm`` a :class:`StreamTransactionManager`.

    Runs as a late configuration action (order 11), after pyramid_tm has
    resolved a dotted ``tm.manager_hook`` (order 10): whatever hook the app
    configured -- the cookiecutter sets ``pyramid_tm.explicit_manager`` -- is
    wrapped, not replaced. Idempotent.
    """
    if _transaction is None:  # pragma: no cover
        return
    settings = config.registry.settings

    def wrap():
        from .settings import as_object

        hook = settings.get('tm.manager_hook')
        if getattr(hook, 'tgstream_wrapped', False):
            return
        inner_hook = as_object('tm.manager_hook', hook) if hook else None

        def manager_hook(request):
            inner = inner_hook(request) if inner_hook else _transaction.manager
            return StreamTransactionManager(inner)

        manager_hook.tgstream_wrapped = True  # type: ignore[attr-defined]
        settings['tm.manager_hook'] = manager_hook

    config.action(None, wrap, order=11)


class StreamTransaction:
    """The transaction of one stream and its outcome."""

    def __init__(self, proxy: StreamTransactionManager, policy: str, request):
        self.proxy = proxy
        self.manager = proxy.manager
        self.request = request
        self.decision: str | None = None
        self.txn: Any = None
        self.outcome: str = Recorded.NOT_MANAGED
        if policy == 'stream':
            self.txn = current_transaction(self.manager)
            proxy.holder = self

    @classmethod
    def attach(cls, stream, request, policy: str) -> 'StreamTransaction | None':
        """Manage ``stream``'s transaction if pyramid_tm manages ``request``.

        A request whose ``tm.active`` was set by someone else (a test fixture)
        owns its transaction: nothing is attached.
        """
        environ = request.environ
        proxy = environ.get('tm.manager')
        if not (environ.get('tm.active') and isinstance(proxy, StreamTransactionManager)):
            return None
        self = cls(proxy, policy, request)
        environ[HOLDER_KEY] = self
        if policy == 'view':
            stream.on_start.append(self.begin_for_stream)
        stream.before_end.append(self.finish)
        stream.on_close.append(self.close)
        return self

    def begin_for_stream(self) -> None:
        # ``view`` policy: pyramid_tm finished the view's transaction at
        # tween egress; the stream gets one of its own. (If the body is read
        # inside the tween chain, the view's transaction is still open and
        # the stream simply runs in it.)
        if self.request.environ.get('tm.active'):
            return
        self.proxy.holder = self
        self.decision = 'commit'
        self.txn = self.manager.begin()
        if self.proxy.doomed:
            self.txn.doom()

    def finish(self) -> None:
        """The stream is exhausted: carry out the decision (may raise)."""
        txn = self.txn
        if self.decision is None:
            # The body was read inside the tween chain, before pyramid_tm
            # decided: let pyramid_tm finish the transaction itself.
            self.proxy.holder = None
            self.outcome = Recorded.PYRAMID_TM
            return
        if not _is_open(txn):
            self.outcome = Recorded.ENDED_BY_STREAM
            return
        if self.decision == 'commit' and not txn.isDoomed():
            self.outcome = Recorded.COMMITTING
            txn.commit()
            self.outcome = Recorded.COMMITTED
        else:
            txn.abort()
            self.outcome = Recorded.ABORTED

    def close(self, stream) -> None:
        """The stream was closed: abort whatever is still open."""
        if _is_open(self.txn) and self.outcome != Recorded.PYRAMID_TM:
            try:
                self.txn.abort()
            finally:
                self.outcome = Recorded.ABORTED
        stream.transaction_outcome = self.outcome
        self.proxy.holder = None
        self.request.environ.pop(HOLDER_KEY, None)

    def checkpoint(self) -> None:
        txn = self.txn
        keep = self.decision != 'abort' and _is_open(txn) and not txn.isDoomed()
        doomed = _is_open(txn) and txn.isDoomed()
        if _is_open(txn):
            if keep:
                txn.commit()
            else:
                txn.abort()
        self.txn = self.manager.begin()
        if doomed or self.proxy.doomed:
            self.txn.doom()


def current_transaction(manager):
    """``manager``'s current transaction, or ``None`` (explicit mode)."""
    try:
        return manager.get()
    except NoTransaction:
        return None


def checkpoint(request=None) -> None:
    """Commit the work so far and go on in a new transaction.

    For long imports that should keep their progress: call it from a stream
    (or a view) every N rows. What was committed stays committed even if the
    stream later fails or the client disconnects -- only the work since the
    last checkpoint is aborted. ORM objects loaded before a checkpoint are
    detached afterwards (zope.sqlalchemy closes the session), so re-query
    what you still need. A doomed transaction, or one pyramid_tm decided to
    abort, is aborted instead of committed (and the new one is doomed).

    Example::

        for n, row in enumerate(rows, 1):
            request.dbsession.add(Item(**row))
            if n % 1000 == 0:
                tgstream.checkpoint(request)
                yield '%d rows imported\\n' % n
    """
    request = request if request is not None else get_current_request()
    if request is None:
        raise RuntimeError(
            'tgstream.checkpoint() needs a request: call it in a view or a '
            'stream, or pass the request'
        )
    holder = request.environ.get(HOLDER_KEY)
    if holder is not None and holder.txn is not None:
        holder.checkpoint()
        return
    manager = getattr(request, 'tm', None) or _transaction.manager
    txn = current_transaction(manager)
    doomed = txn is not None and txn.isDoomed()
    if doomed:
        txn.abort()
    elif txn is not None:
        txn.commit()
    new = manager.begin()
    if doomed:
        new.doom()
