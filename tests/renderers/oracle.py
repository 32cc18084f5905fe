"""The differential oracle: every fast path of an export against the regular path.

``export_paths(renderer, options, make_value)`` renders the same export
(``make_value()`` makes a fresh value each time: a ``stream_query``, a
``Result`` with its filters, a list of dicts...) through:

- ``regular``: the renderer's encoder, each item of the value (what
  iterating it gives) encoded alone -- the definition of the output;
- ``renderer``: the value as the renderer itself streams it (it picks the
  fast path: ``TupleRows``, PostgreSQL ``TextRows``, ``ResultRows``,
  verbatim CSV batches, native dates...);
- ``coalesced-N``: the items in runs of N, one ``encode_batch`` call per run
  (what the stream does with a generator that yields quickly).

and returns ``{path: bytes}`` plus the kinds of batch the renderer path
saw. :func:`assert_identical` asserts every path wrote the regular bytes.
A new fast path cannot land without going through here.
"""
from __future__ import annotations

import types
from typing import Any, Callable

from pyramid.config import Configurator
from pyramid.renderers import JSON
from pyramid.testing import DummyRequest

from tgstream.items import Batch
from tgstream.renderers import StreamRendererInfo
from tgstream.renderers.csv import CSVStreamRenderer
from tgstream.renderers.json import JSONStreamRenderer, NDJSONStreamRenderer

FACTORIES = {
    'csv': CSVStreamRenderer,
    'json': JSONStreamRenderer,
    'ndjson': NDJSONStreamRenderer,
}
RUNS = (1, 3, 7, 1000)


def make_registry(adapters: dict | None = None, settings: dict | None = None):
    """A committed registry with tgstream and a ``json`` renderer with
    ``adapters`` ({class: function(obj, request)})."""
    config = Configurator(settings=settings or {})
    config.include('tgstream')
    renderer = JSON()
    for cls, adapter in (adapters or {}).items():
        renderer.add_adapter(cls, adapter)
    config.add_renderer('json', renderer)
    config.commit()
    return config.registry


def make_renderer(name: str, options: dict, registry) -> Any:
    """The stream renderer ``name`` of a view with these ``stream_options``
    (built as Pyramid builds it: options checked here)."""
    helper = types.SimpleNamespace(name=name, type=name, package=None, registry=registry)
    return FACTORIES[name](StreamRendererInfo(helper, dict(options), 'oracle_view'))


def _request(registry):
    request = DummyRequest()
    request.registry = registry
    return request


def _finish(encoder, chunks: list) -> bytes:
    chunks.append(encoder.end())
    return b''.join(chunks)


def export_paths(name: str, options: dict, make_value: Callable[[], Any],
                 registry=None) -> tuple[dict[str, bytes], set]:
    """``({path: bytes}, {kinds of batch on the renderer path})``."""
    registry = registry or make_registry()
    renderer = make_renderer(name, options, registry)
    out: dict[str, bytes] = {}

    items = list(make_value())
    encoder = renderer.encoder(_request(registry))
    out['regular'] = _finish(encoder, [encoder.encode(item) for item in items])

    kinds: set = set()
    value, encoder = renderer(make_value(), _request(registry))
    chunks = []
    for item in value:
        if isinstance(item, Batch):
            kinds.add(type(item.items))
            chunks.append(encoder.encode_batch(item.items))
        else:
            kinds.add(type(item))
            chunks.append(encoder.encode(item))
    close = getattr(value, 'close', None)
    if close is not None:
        close()
    out['renderer'] = _finish(encoder, chunks)

    for run in RUNS:
        encoder = renderer.encoder(_request(registry))
        out['coalesced-%d' % run] = _finish(encoder, [
            encoder.encode_batch(items[start:start + run])
            for start in range(0, len(items), run)])
    return out, kinds


def assert_identical(paths: dict[str, bytes]) -> bytes:
    """Every path wrote the regular path's bytes; returns them."""
    regular = paths['regular']
    for path, data in paths.items():
        assert data == regular, 'path %s differs from the regular path:\n%r\n%r' % (
            path, data, regular)
    return regular
