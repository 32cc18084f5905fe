"""``expose``: a TurboGears-style view decorator built on ``view_config``."""
from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence, TypeVar

from pyramid.exceptions import ConfigurationError
from pyramid.view import view_config

F = TypeVar('F', bound=Callable[..., Any])

#: ``expose`` keywords and the view options they become
TRANSLATED = {'content_type': 'stream_content_type', 'filename': 'stream_filename'}


class expose:
    """Register the decorated function or method as a view, like ``view_config``.

    ``renderer`` may be given positionally (``@expose('json')``). With
    ``stream=True`` the view streams: it may be a generator function or return
    any iterable, and each item reaches the client as it is produced, with the
    request, its transaction and ``tgstream.request`` usable throughout.

    TurboGears-style keywords, translated to tgstream's prefixed view options
    (so that they never reach other add-ons' predicates of the same name):

    - ``content_type`` (``stream_content_type``) sets the response's content
      type, for stream and non-stream views alike (before the view runs: a
      type the view sets on ``request.response`` wins);
    - ``filename`` (``stream_filename``) sends an RFC 6266
      ``Content-Disposition: attachment`` with that download name;
    - ``columns`` and ``dialect`` go into ``stream_options`` (CSV streams).

    Each has one spelling here: ``expose(stream_content_type=...)``,
    ``expose(stream_filename=...)`` and ``columns``/``dialect`` inside
    ``stream_options`` still work but are deprecated (a
    ``DeprecationWarning``). Everything else is passed to ``view_config``
    (``route_name``, ``request_method``, ``permission``,
    ``stream_transaction``, ``stream_options``, ...), and the view is
    registered by ``config.scan()``. A ``content_type`` *predicate*
    of another add-on (cornice) needs ``view_config``, not ``expose``.

    Example::

        @expose(route_name='count', stream=True, content_type='text/plain')
        def count(request):
            for n in range(1, 11):
                yield '%s\\n' % n

    Caveat: a stream's status and headers are sent with its first item; set
    them before the first ``yield``.
    """

    def __init__(
        self,
        renderer: str | None = None,
        *,
        stream: bool = False,
        content_type: str | None = None,
        filename: str | None = None,
        columns: Sequence[str] | None = None,
        dialect: Any = None,
        **view_config_args: Any,
    ):
        settings = dict(view_config_args)
        _warn_second_spellings(settings)
        if renderer is not None:
            settings['renderer'] = renderer
        if stream:
            settings['stream'] = stream
        for keyword, value in (('content_type', content_type), ('filename', filename)):
            if value is None:
                continue
            if TRANSLATED[keyword] in settings:
                raise ConfigurationError(
                    'expose(): give %s or %s, not both' % (keyword, TRANSLATED[keyword])
                )
            settings[TRANSLATED[keyword]] = value
        shortcuts = {
            key: value
            for key, value in (('columns', columns), ('dialect', dialect))
            if value is not None
        }
        if shortcuts:
            stream_options = settings.get('stream_options') or {}
            # (not a dict: left for the deriver's error naming the view)
            if isinstance(stream_options, dict):
                twice = sorted(set(shortcuts) & set(stream_options))
                if twice:
                    raise ConfigurationError(
                        'expose(): %s given both as a keyword and in '
                        'stream_options' % ', '.join(twice)
                    )
                settings['stream_options'] = {**stream_options, **shortcuts}
        self.settings = settings

    def __call__(self, wrapped: F) -> F:
        # _depth=1: venusian must see the caller of this method, the class
        # body or module that applies the decorator.
        settings = dict(self.settings)
        depth = settings.pop('_depth', 0) + 1
        return view_config(_depth=depth, **settings)(wrapped)


def _warn_second_spellings(settings: dict) -> None:
    # Deprecated: the view options' own names given to expose (view_config
    # and add_view keep them; expose has its TurboGears keywords).
    for keyword, option in TRANSLATED.items():
        if option in settings:
            _deprecated('expose(%s=...)' % option, 'expose(%s=...)' % keyword)
    stream_options = settings.get('stream_options')
    if isinstance(stream_options, dict):
        for key in ('columns', 'dialect'):
            if key in stream_options:
                _deprecated(
                    "expose(stream_options={'%s': ...})" % key, 'expose(%s=...)' % key
                )


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        '%s is deprecated; use %s' % (old, new), DeprecationWarning, stacklevel=4
    )
