"""The ``tgstream._compat`` entries for OpenTelemetry's Pyramid
instrumentation and Pyramid's tween registry: each test fails, naming the
entry, when the library changes what tgstream reaches into."""
from __future__ import annotations

import inspect

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.pyramid import callbacks
from pyramid.config import Configurator
from pyramid.interfaces import ITweens

from tests.otel_support import build_traced_app, sdk
from tgstream import _compat


def test_environ_keys_and_tween_name():
    assert callbacks.TWEEN_NAME == _compat.OTEL_TWEEN
    assert callbacks._ENVIRON_SPAN_KEY == _compat.OTEL_SPAN_KEY
    assert callbacks._ENVIRON_ACTIVATION_KEY == _compat.OTEL_ACTIVATION_KEY
    assert callbacks._ENVIRON_STARTTIME_KEY == _compat.OTEL_STARTTIME_KEY


def test_the_tween_exits_the_activation_it_keeps_in_the_environ():
    source = inspect.getsource(callbacks)
    assert 'trace.use_span(span, end_on_exit=True)' in source, (
        'otel_span_end_deferred: the activation is no longer use_span(end_on_exit=True)')
    assert 'request.environ.get(_ENVIRON_ACTIVATION_KEY)' in source, (
        'OTEL_ACTIVATION_KEY: the tween no longer reads the activation from the environ')


def test_request_instruments_are_in_the_tween_closure():
    sdk()
    app = build_traced_app(includes=())
    tween = app.handle_request
    while getattr(tween, '__name__', '') != 'trace_tween':
        cells = dict(zip(tween.__code__.co_freevars, tween.__closure__))
        tween = cells['handler'].cell_contents
    found = _compat.otel_request_instruments(tween)
    assert set(found) >= {'duration_histogram_old', 'active_requests_counter'}, (
        'otel_request_instruments: the closure of trace_tween changed: %s'
        % (tween.__code__.co_freevars,))
    assert found['active_requests_counter'].name == 'http.server.active_requests'
    assert found['duration_histogram_old'].unit == _compat.OTEL_REQUEST_INSTRUMENTS[
        'duration_histogram_old']
    assert _compat.otel_request_instruments(lambda request: None) == {}


def test_span_end_deferred_detaches_without_ending():
    span = sdk().tracer_provider.get_tracer('t').start_span('held')
    activation = trace.use_span(span, end_on_exit=True)
    before = otel_context.get_current()
    activation.__enter__()
    assert trace.get_current_span() is span
    with _compat.otel_span_end_deferred(span):
        activation.__exit__(None, None, None)
    assert otel_context.get_current() == before
    assert span.is_recording(), 'otel_span_end_deferred: use_span ended the span'
    span.end()
    assert not span.is_recording()


def test_wrap_tween_factory_implicit_and_explicit():
    def wrap(factory):
        def wrapped(handler, registry):
            tween = factory(handler, registry)
            tween.wrapped = True
            return tween
        return wrapped

    for settings in ({}, {'pyramid.tweens': 'pyramid.tweens.excview_tween_factory'}):
        config = Configurator(settings=settings)
        config.commit()
        assert _compat.wrap_tween_factory(
            config.registry, 'pyramid.tweens.excview_tween_factory', wrap
        ), 'wrap_tween_factory: Pyramid Tweens.explicit / sorter.name2val changed'
        assert not _compat.wrap_tween_factory(config.registry, 'no.such', wrap)
        tweens = config.registry.getUtility(ITweens)
        assert tweens(lambda request: None, config.registry).wrapped


def test_context_var_is_what_attach_sets():
    var = _compat.otel_context_var()
    assert var is not None, 'otel_context_var: the default runtime context changed'
    ctx = trace.set_span_in_context(trace.INVALID_SPAN)
    token = var.set(ctx)
    try:
        assert otel_context.get_current() is ctx
    finally:
        var.reset(token)
    token = otel_context.attach(ctx)
    assert var.get() is ctx
    otel_context.detach(token)
