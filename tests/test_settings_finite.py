"""Values that silently turned features off are refused at startup (issue 18)."""
from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError

from tests.conftest import build_app
from tgstream.settings import parse_settings

#: a dotted name of an object that is not a session
NOT_A_SESSION = 'tgstream.settings.StreamSettings'


@pytest.mark.parametrize('key', ['tgstream.flush_interval', 'tgstream.sse.keepalive'])
@pytest.mark.parametrize('value', ['nan', 'NaN', 'inf', '-inf', '-1', float('nan')])
def test_non_finite_numbers_are_refused(key, value):
    with pytest.raises(ConfigurationError, match=key.replace('.', r'\.')):
        parse_settings({key: value})


def test_keepalive_view_option_nan_is_refused():
    def events(request):
        yield {'a': 1}

    def setup(config):
        config.add_route('e', '/e')
        config.add_view(events, route_name='e', stream=True, renderer='sse',
                        stream_options={'keepalive': float('nan')})

    with pytest.raises(ConfigurationError, match='events.*keepalive'):
        build_app(setup)


@pytest.mark.parametrize('value', [NOT_A_SESSION, 'tgstream.settings:parse_settings',
                                   'sqlalchemy.orm:sessionmaker'])
def test_a_session_setting_that_is_not_a_session_is_refused(value):
    with pytest.raises(ConfigurationError, match=r'tgstream\.sqlalchemy\.session.*not a SQLAlchemy session'):
        parse_settings({'tgstream.sqlalchemy.session': value})


def test_a_scoped_session_is_accepted():
    from sqlalchemy.orm import Session, scoped_session, sessionmaker

    scoped = scoped_session(sessionmaker())
    assert parse_settings({'tgstream.sqlalchemy.session': scoped}).sqlalchemy_session is scoped
    plain = Session()
    assert parse_settings({'tgstream.sqlalchemy.session': plain}).sqlalchemy_session is plain
