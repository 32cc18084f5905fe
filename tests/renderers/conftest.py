"""Fixtures of the renderer tests."""
from __future__ import annotations

import pytest

from tgstream.renderers import jsonrules


@pytest.fixture(params=['orjson', 'stdlib'])
def json_impl(request, monkeypatch):
    """Run the test with orjson, then with the standard library alone."""
    if request.param == 'stdlib':
        monkeypatch.setattr(jsonrules, 'orjson', None)
    else:
        pytest.importorskip('orjson')
    return request.param
