"""Query parameters, checked before a stream starts."""
from __future__ import annotations

from pyramid.httpexceptions import HTTPBadRequest


def bad_request(message: str) -> HTTPBadRequest:
    """A plain-text 400 whose body is ``message`` (what curl users see)."""
    return HTTPBadRequest(
        text=message.rstrip('\n') + '\n', content_type='text/plain', charset='utf-8'
    )


def int_param(request, name: str, default: int, minimum: int, maximum: int) -> int:
    """``request.params[name]`` as an int in [minimum, maximum], else a 400."""
    raw = request.params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise bad_request(
            '?%s=%s is not valid: expected a whole number from %d to %d'
            % (name, raw[:40], minimum, maximum)
        )
    return value
