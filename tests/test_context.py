"""``tgstream.context.request_context``: push a request, pop exactly it."""
from __future__ import annotations

import threading

import pytest
from pyramid.testing import DummyRequest
from pyramid.threadlocal import get_current_registry, get_current_request, manager

from tgstream.context import request_context


def test_the_request_and_its_registry_are_current_inside_only():
    request = DummyRequest()
    assert get_current_request() is None
    with request_context(request):
        assert get_current_request() is request
        assert get_current_registry() is request.registry
    assert get_current_request() is None


def test_extra_entries_left_by_the_block_are_popped_too():
    before = list(manager.stack)
    with request_context(DummyRequest()):
        manager.push({'request': DummyRequest(), 'registry': None})  # a leak
    assert manager.stack == before


def test_popped_on_error_and_reusable():
    request = DummyRequest()
    context = request_context(request)
    with pytest.raises(StopIteration):
        with context:
            raise StopIteration
    assert get_current_request() is None
    with context:
        assert get_current_request() is request
    assert get_current_request() is None


def test_each_thread_has_its_own_stack():
    request = DummyRequest()
    inside = threading.Event()
    leave = threading.Event()
    seen = []

    def other():
        with request_context(request):
            inside.set()
            leave.wait(5)
        seen.append(get_current_request())

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(5)
    assert get_current_request() is None  # not on this thread
    leave.set()
    thread.join(5)
    assert seen == [None]
