"""Pyramid's thread-local request context, pushed around stream iteration.

Pyramid pops its threadlocals before the server iterates a response body
(``Router.__call__`` returns ``response(environ, start_response)`` after
leaving the request context), so ``get_current_request()`` is ``None`` inside
a plain generator. tgstream pushes the request back around every ``next()``
and ``close()`` and pops it afterwards, on whatever thread runs them.
"""
from __future__ import annotations

from ._compat import threadlocal_stack

#: environ key of an optional hook entered around every step as well: an
#: object with ``enter() -> token`` and ``exit(token)`` (tgstream.otel keeps
#: the request's trace context current with it)
STEP_HOOK_KEY = 'tgstream.step_hook'


class request_context:
    """Make ``request`` the current request (and its registry) for a block.

    On exit it pops exactly what it pushed, even if the block left extra
    entries on the stack (a misbehaving generator), so no state leaks onto
    the thread. A class rather than ``@contextmanager``: it wraps every
    ``next()`` of a stream, where ``StopIteration`` passes through it.
    """

    __slots__ = ('info', 'depth', 'hook', 'token')

    def __init__(self, request):
        self.info = {'request': request, 'registry': request.registry}
        self.hook = getattr(request, 'environ', _NO_ENVIRON).get(STEP_HOOK_KEY)

    def __enter__(self) -> None:
        stack = threadlocal_stack()
        self.depth = len(stack)
        stack.append(self.info)
        if self.hook is not None:
            self.token = self.hook.enter()

    def __exit__(self, *exc_info) -> None:
        if self.hook is not None:
            self.hook.exit(self.token)
        del threadlocal_stack()[self.depth:]


_NO_ENVIRON: dict = {}
