"""The base classes of the built-in stream renderers (exported by
:mod:`tgstream.renderers`): option checks and the app's JSON rules."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IRendererFactory
from pyramid.renderers import JSON

from ..query import result_batches
from .encoders import Encoder

if TYPE_CHECKING:  # pragma: no cover
    from . import StreamRendererInfo  # (the package imports this module)


def check_option_names(info: StreamRendererInfo, allowed: Iterable[str]) -> None:
    """Refuse ``stream_options`` keys not in ``allowed``: a
    :class:`ConfigurationError` naming the view, the options and what the
    renderer takes (at configuration time, never a silently ignored option)."""
    allowed = sorted(allowed)
    unknown = sorted(set(info.options) - set(allowed))
    if unknown:
        raise ConfigurationError(
            'view %s: stream_options %s: unknown stream option%s for renderer '
            '%r; it takes: %s'
            % (info.view_name, ', '.join(unknown), 's' if len(unknown) > 1 else '',
               info.name, ', '.join(allowed) or '(none)')
        )


class StreamRenderer:
    """Base of the built-in stream renderers: checks ``stream_options``.

    Subclasses set ``content_type``, ``options`` (the option names they
    take) and ``batches`` (whether a returned
    :class:`~tgstream.query.QueryStream` is streamed batch by batch), and
    implement :meth:`encoder`.
    """

    content_type = 'application/octet-stream'
    options: frozenset = frozenset()
    batches = True

    def __init__(self, info):
        self.view_name = info.view_name
        check_option_names(info, self.options)
        self.error_marker = self.bool_option(info.options, 'error_marker', False)

    def option_error(self, option: str, problem: str) -> ConfigurationError:
        return ConfigurationError(
            'view %s: stream_options %s: %s' % (self.view_name, option, problem)
        )

    def bool_option(self, options: dict, name: str, default: bool) -> bool:
        if name not in options:
            return default
        value = options[name]
        if not isinstance(value, bool):
            raise self.option_error(name, '%r is not True or False' % (value,))
        return value

    def __call__(self, value: Any, request) -> tuple[Iterable[Any], Encoder]:
        encoder = self.encoder(request)
        if self.batches:
            # rows as tuples (tgstream.items.TupleRows), or text tuples
            # (TextRows), where the encoder takes them
            text = getattr(encoder, 'takes_text_rows', False)
            tuples = text or getattr(encoder, 'takes_tuple_rows', False)
            batches = None
            if text:
                batches = getattr(value, 'tgstream_text_batches', None)
            elif tuples:
                batches = getattr(value, 'tgstream_tuple_batches', None)
            if batches is None:
                batches = getattr(value, 'tgstream_batches', None)
            if batches is not None:  # a QueryStream returned by the view
                value = batches()
            else:  # a SQLAlchemy Result, ScalarResult or Query
                value = result_batches(value, tuples=tuples, text=text) or value
        return value, encoder

    def encoder(self, request) -> Encoder:  # pragma: no cover - abstract
        raise NotImplementedError


class JSONRulesRenderer(StreamRenderer):
    """A stream renderer that encodes with the app's ``json`` renderer rules:
    that renderer must be a :class:`pyramid.renderers.JSON` (checked here, at
    configuration time, so its rules are never silently ignored)."""

    #: the JSONPlan of its streams, by one_line (tgstream.renderers.jsonrules.plan_of)
    json_plans: dict | None = None

    def __init__(self, info):
        super().__init__(info)
        renderer = info.registry.queryUtility(IRendererFactory, name='json')
        if renderer is not None and not isinstance(renderer, JSON):
            raise ConfigurationError(
                'view %s: renderer %r encodes with the rules of the app\'s '
                '\'json\' renderer, but that is %r, not a '
                'pyramid.renderers.JSON; register a JSON(...) as \'json\' (its '
                'serializer=, options and adapters are honoured)'
                % (self.view_name, info.name, renderer)
            )
