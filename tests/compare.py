"""Call two apps the same way and compare what a client (and the app) saw.

``exchange(app, method, path, events=None, **request_args)`` makes one raw
WSGI call and returns ``(status, headerlist, body)``, or ``('raised',
ExceptionType, str(error))`` when the app raised; when ``events`` is a list,
it records when the call returned, when the body was read and when it was
closed, so that the position of the app's own events (finished callbacks...)
can be compared too.
"""
from __future__ import annotations

import re

from webob import Request


def exchange(app, method='GET', path='/', events=None, normalize=None, **request_args):
    request = Request.blank(path, method=method, **request_args)
    environ = request.environ
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen['status'], seen['headers'] = status, list(headers)
        return lambda data: None

    note = events.append if events is not None else (lambda event: None)
    try:
        body_iter = app(environ, start_response)
    except Exception as error:
        note('raised')
        return ('raised', type(error), str(error))
    note('returned')
    try:
        body = b''.join(body_iter)
        note('read')
    finally:
        close = getattr(body_iter, 'close', None)
        if close is not None:
            close()
        note('closed')
    result = (seen['status'], seen['headers'], body)
    return normalize(result) if normalize is not None else result


_TOOLBAR_ID = re.compile(rb'(_debug_toolbar/[a-z_]*/?)[0-9a-f]{6,}')


def without_toolbar_ids(result):
    """The toolbar's per-request ids replaced by a placeholder."""
    if result[0] == 'raised':
        return result
    status, headers, body = result
    body = _TOOLBAR_ID.sub(rb'\1<id>', body)
    headers = [
        (name, 'ID' if name.lower() == 'content-length' else
         _TOOLBAR_ID.sub(rb'\1<id>', value.encode('latin-1')).decode('latin-1'))
        for name, value in headers
    ]
    return status, headers, body
