"""Transactions that span a stream.

pyramid_tm commits when the view returns, before the server iterates the
body. ``request.tm`` stays the app's own manager (whatever
``tm.manager_hook`` returns); tgstream only notes, per request, which manager
pyramid_tm got from the hook. When a stream is attached -- inside the tween
chain, before pyramid_tm's egress -- the request's current transaction gets
two instance attributes, so that pyramid_tm's ``commit()``/``abort()`` only
*record* pyramid_tm's decision (the first call removes them). The stream
carries it out when it ends:

- exhausted: commit (unless pyramid_tm decided to abort or the transaction
  is doomed), inside the ``next()`` that found the end, before the closing
  bytes -- a commit error cuts the response;
- raised or closed early: abort.

With the ``view`` policy pyramid_tm finishes at view return as usual and the
stream runs in a transaction of its own, begun at its first ``next()``.
A request that does not stream pays one dictionary store in the hook.
"""
from __future__ import annotations

import logging
from typing import Any

from pyramid.threadlocal import get_current_request

from ._compat import (
    AFTER_TM_MANAGER_HOOK,
    TM_TWEEN,
    defer_commit_abort,
    undefer_commit_abort,
)
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
#: environ key of the manager tgstream's hook handed to pyramid_tm
MANAGER_KEY = 'tgstream.tm'


def wrap_manager_hook(config) -> None:
    """Note the manager pyramid_tm uses for each request (``request.tm``).

    Runs as a late configuration action (order 11), after pyramid_tm has
    resolved a dotted ``tm.manager_hook`` (order 10), and only when
    pyramid_tm's tween is in the app. Whatever hook the app configured -- the
    cookiecutter sets ``pyramid_tm.explicit_manager`` -- is wrapped, not
    replaced: the wrapper calls it (or takes ``transaction.manager``, as
    pyramid_tm does without a hook), stores the result in
    ``environ['tgstream.tm']`` and returns it unchanged. Idempotent.
    """
    if _transaction is None:  # pragma: no cover
        return
    registry = config.registry

    def wrap():
        from .settings import as_object

        if not uses_pyramid_tm(registry):
            return
        settings = registry.settings
        hook = settings.get('tm.manager_hook')
        if getattr(hook, 'tgstream_wrapped', False):
            return
        inner_hook = as_object('tm.manager_hook', hook) if hook else None
        settings['tm.manager_hook'] = _recording_hook(inner_hook)

    config.action(None, wrap, order=AFTER_TM_MANAGER_HOOK)


def uses_pyramid_tm(registry) -> bool:
    """Is pyramid_tm's tween in this app's tween chain?"""
    from pyramid.interfaces import ITweens

    tweens = registry.queryUtility(ITweens)
    if tweens is None:
        return False
    names = [name for name, _ in tweens.explicit] or list(tweens.sorter.names)
    return TM_TWEEN in names


def _recording_hook(inner_hook):
    if inner_hook is None:
        def manager_hook(request):
            manager = request.environ[MANAGER_KEY] = _transaction.manager
            return manager
    elif inner_hook is _explicit_manager():
        # the cookiecutter's hook, inlined: one call less per request
        TransactionManager = _transaction.TransactionManager

        def manager_hook(request):
            manager = request.environ[MANAGER_KEY] = TransactionManager(explicit=True)
            return manager
    else:
        def manager_hook(request):
            manager = request.environ[MANAGER_KEY] = inner_hook(request)
            return manager

    manager_hook.tgstream_wrapped = True  # type: ignore[attr-defined]
    manager_hook.wrapped = inner_hook  # type: ignore[attr-defined]
    return manager_hook


def _explicit_manager():
    try:
        from pyramid_tm import explicit_manager
    except ImportError:  # pragma: no cover - pyramid_tm is an optional extra
        return None
    return explicit_manager


class StreamTransaction:
    """The transaction of one stream and its outcome.

    Also a ``transaction`` synchronizer of the request's manager while the
    stream may use it, so that a transaction begun in the stream (``commit()``
    then ``begin()``, TurboGears style) is the one finished at the end.
    """

    def __init__(self, manager, policy: str, request):
        self.manager = manager
        self.policy = policy
        self.request = request
        self.decision: str | None = None
        self.txn = None
        self.outcome: Recorded = Recorded.NOT_MANAGED
        #: ``view`` policy: the view's transaction was doomed
        self.doomed = False
        self._deferred = None
        self._synchronized = None
        txn = current_transaction(manager)
        if policy == 'stream':
            self.txn = txn
            self._defer(txn)
            self._synchronize()
        else:
            self.doomed = txn is not None and txn.isDoomed()

    @classmethod
    def attach(cls, request, policy: str) -> 'StreamTransaction | None':
        """The transaction of a stream of ``request``, if pyramid_tm manages it.

        A request whose ``tm.active`` was set by someone else (a test fixture)
        owns its transaction: ``None``.
        """
        environ = request.environ
        manager = environ.get('tm.manager')
        if not (
            environ.get('tm.active')
            and manager is not None
            and manager is environ.get(MANAGER_KEY)
        ):
            return None
        self = cls(manager, policy, request)
        environ[HOLDER_KEY] = self
        return self

    # pyramid_tm's egress calls manager.commit()/abort(), which call the
    # current transaction's: instance attributes shadow them until the first
    # call, which records pyramid_tm's decision instead.
    def _defer(self, txn) -> None:
        if txn is not None:
            defer_commit_abort(txn, self._record_commit, self._record_abort)
            self._deferred = txn

    def _undefer(self) -> None:
        txn, self._deferred = self._deferred, None
        if txn is not None:
            undefer_commit_abort(txn)

    def _record_commit(self) -> None:
        self._undefer()
        self.decision = 'commit'

    def _record_abort(self) -> None:
        self._undefer()
        self.decision = 'abort'

    # ISynchronizer: follow the transactions begun on the request's manager
    def _synchronize(self) -> None:
        target = self.manager
        if isinstance(target, _transaction.ThreadTransactionManager):
            # its registerSynch is per thread: keep the wrapped manager, so
            # that close() on another thread unregisters it
            target = target.manager
        target.registerSynch(self)
        self._synchronized = target

    def _unsynchronize(self) -> None:
        target, self._synchronized = self._synchronized, None
        if target is not None:
            try:
                target.unregisterSynch(self)
            except (KeyError, ValueError):  # pragma: no cover - already gone
                pass

    @property
    def txn(self) -> Any:
        """The stream's transaction (the last one begun on its manager)."""
        return self._txn

    @txn.setter
    def txn(self, txn: Any) -> None:
        self._txn = txn
        self._txn_ended = False

    def _is_open(self, txn) -> bool:
        # Committed or aborted by whoever did it (user code calling
        # transaction.commit() in a stream, TurboGears style, included): the
        # public afterCompletion below says so. A failed commit leaves the
        # transaction open (to be aborted).
        return txn is not None and not (txn is self._txn and self._txn_ended)

    def newTransaction(self, txn) -> None:
        self.txn = txn

    def beforeCompletion(self, txn) -> None:
        pass

    def afterCompletion(self, txn) -> None:
        if txn is self._txn:
            self._txn_ended = True

    def begin_for_stream(self) -> None:
        # ``view`` policy: pyramid_tm finished the view's transaction at
        # tween egress; the stream gets one of its own. (If the body is read
        # inside the tween chain, the view's transaction is still open and
        # the stream simply runs in it.)
        if self.request.environ.get('tm.active'):
            return
        self.decision = 'commit'
        self._synchronize()
        self.txn = self.manager.begin()
        if self.doomed:
            self.txn.doom()

    def finish(self) -> Recorded:
        """The stream is exhausted: carry out the decision (may raise);
        return what was done."""
        self.outcome = self._finish()
        return self.outcome

    def _finish(self) -> Recorded:
        txn = self.txn
        if self.decision is None:
            # The body was read inside the tween chain, before pyramid_tm
            # decided: let pyramid_tm finish the transaction itself.
            self._undefer()
            return Recorded.PYRAMID_TM
        if not self._is_open(txn):
            return Recorded.ENDED_BY_STREAM
        if self.decision == 'commit' and not txn.isDoomed():
            # (if the commit raises, the outcome stays COMMITTING: aborted)
            self.outcome = Recorded.COMMITTING
            txn.commit()
            return Recorded.COMMITTED
        txn.abort()
        return Recorded.ABORTED

    def close(self) -> Recorded:
        """The stream was closed: abort whatever is still open; return the
        transaction's final state."""
        self._undefer()
        self._unsynchronize()
        self.request.environ.pop(HOLDER_KEY, None)
        if self._is_open(self.txn) and self.outcome != Recorded.PYRAMID_TM:
            try:
                self.txn.abort()
            finally:
                self.outcome = Recorded.ABORTED
        return self.outcome

    def checkpoint(self) -> None:
        txn = self.txn
        keep = self.decision != 'abort' and self._is_open(txn) and not txn.isDoomed()
        doomed = self._is_open(txn) and txn.isDoomed()
        deferred = self._deferred is not None
        self._undefer()
        if self._is_open(txn):
            if keep:
                txn.commit()
            else:
                txn.abort()
        self.txn = self.manager.begin()
        if doomed or self.doomed:
            self.txn.doom()
        if deferred:  # pyramid_tm has not decided yet: its call is still ours
            self._defer(self.txn)


def resolve_policy(view_policy: str | None, origin: Any, settings) -> str:
    """The transaction policy of one stream, decided once, at the hand-over.

    The view's ``stream_transaction`` if it has one; else what the view's
    iterable asks for (``origin.tgstream_transaction``: a live stream,
    :func:`tgstream.listen`, asks for ``view``); else the
    ``tgstream.transaction`` setting.
    """
    return (view_policy or getattr(origin, 'tgstream_transaction', None)
            or settings.transaction)


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
