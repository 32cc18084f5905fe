"""The in-process backend: publish when the transaction commits.

A ``transaction`` data manager joins the transaction on the first
``notify()``. It sorts after every other resource, takes a process-wide lock
in ``tpc_begin`` and publishes in ``tpc_finish``, after the database
resources committed (zope.sqlalchemy commits in ``tpc_vote``) -- so within
the process, events are published in the order their transactions
committed. An abort (a doomed or failed
transaction, a stream that failed or lost its client) drops them.
"""
from __future__ import annotations

import threading
import time

from .hub import Event, Hub

# Held from our tpc_begin to our tpc_finish: covers the database's commit
# (every resource's tpc_begin runs before any vote), so publication order
# is commit order.
_COMMIT_ORDER = threading.Lock()


class MemoryNotifications:
    """The events of one transaction, published if it commits."""

    def __init__(self, hub: Hub, manager):
        self.hub = hub
        #: IDataManager: the manager of the transaction it joined
        self.transaction_manager = manager
        self.events: list[Event] = []
        self._locked = False

    @classmethod
    def join(cls, hub: Hub, txn, manager) -> 'MemoryNotifications':
        try:
            return txn.data(cls)
        except KeyError:
            self = cls(hub, manager)
            txn.join(self)
            txn.set_data(cls, self)
            return self

    def sortKey(self) -> str:
        return '~~tgstream.live'

    def abort(self, txn) -> None:
        self.events.clear()

    def tpc_begin(self, txn) -> None:
        _COMMIT_ORDER.acquire()
        self._locked = True

    def commit(self, txn) -> None:
        pass

    def tpc_vote(self, txn) -> None:
        pass

    def tpc_finish(self, txn) -> None:
        try:
            committed_at = time.time()
            for event in self.events:
                self.hub.publish(event._replace(committed_at=committed_at))
        finally:
            self.events.clear()
            self._release()

    def tpc_abort(self, txn) -> None:
        self.events.clear()
        self._release()

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            _COMMIT_ORDER.release()
