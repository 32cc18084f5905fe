"""Pyramid's thread-local request context, pushed around stream iteration.

Pyramid pops its threadlocals before the server iterates a response body
(``Router.__call__`` returns ``response(environ, start_response)`` after
leaving the request context), so ``get_current_request()`` is ``None`` inside
a plain generator. tgstream pushes the request back around every ``next()``
and ``close()`` and pops it afterwards, on whatever thread runs them.
"""
from __future__ import annotations

from ._compat import threadlocal_stack


class request_context:
    """Make ``request`` the current request (and its registry) for a block.

    On exit it pops exactly what it pushed, even if the block left extra
    entries on the stack (a misbehaving generator), so no state leaks onto
    the thread. A class rather than ``@contextmanager``: it wraps every
    ``next()`` of a stream, where ``StopIteration`` passes through it.
    """

    __slots__ = ('info', 'depth')

    def __init__(self, request):
        self.info = {'request': request, 'registry': request.registry}

    def __enter__(self) -> None:
        stack = threadlocal_stack()
        self.depth = len(stack)
        stack.append(self.info)

    def __exit__(self, *exc_info) -> None:
        del threadlocal_stack()[self.depth:]
