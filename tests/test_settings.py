"""``tgstream.*`` settings."""
from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError

from tgstream.settings import StreamSettings, parse_settings


def test_defaults():
    assert parse_settings({}) == StreamSettings()
    assert parse_settings(None).transaction == 'stream'


def test_generator_detection_and_server_log_settings():
    assert (StreamSettings().detect_generators, StreamSettings().shorten_server_log) == (True, False)
    parsed = parse_settings({'tgstream.detect_generators': 'off',
                             'tgstream.shorten_server_log': 'yes'})
    assert (parsed.detect_generators, parsed.shorten_server_log) == (False, True)


def test_values_are_parsed():
    parsed = parse_settings(
        {
            'tgstream.transaction': 'view',
            'tgstream.chunk_size': '1024',
            'tgstream.flush_interval': '0.5',
            'tgstream.csv.formula_guard': 'false',
            'tgstream.sqlalchemy.session': 'tests.test_settings:SESSION',
            'other.setting': 'ignored',
        }
    )
    assert parsed.transaction == 'view'
    assert parsed.chunk_size == 1024
    assert parsed.flush_interval == 0.5
    assert parsed.csv_formula_guard is False
    assert parsed.sqlalchemy_session is SESSION


SESSION = __import__('sqlalchemy.orm', fromlist=['scoped_session']).scoped_session(
    __import__('sqlalchemy.orm', fromlist=['sessionmaker']).sessionmaker())


@pytest.mark.parametrize(
    'key, value, message',
    [
        ('tgstream.transaction', 'later', r"tgstream.transaction = 'later'.*stream, view"),
        ('tgstream.chunk_size', '0', r"tgstream.chunk_size = '0'"),
        ('tgstream.chunk_size', 'big', r'tgstream.chunk_size'),
        ('tgstream.flush_interval', '-1', r'tgstream.flush_interval'),
        ('tgstream.csv.formula_guard', 'ture', r"tgstream.csv.formula_guard = 'ture'"),
        ('tgstream.sqlalchemy.session', 'no.such.module:x', r'tgstream.sqlalchemy.session'),
        ('tgstream.chunksize', '1', r'unknown setting.*tgstream.chunksize'),
        ('tgstream.detect_generators', 'sometimes', r"tgstream.detect_generators = 'sometimes'"),
        ('tgstream.shorten_server_log', '2', r"tgstream.shorten_server_log = '2'"),
    ],
)
def test_bad_values_name_the_setting(key, value, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_settings({key: value})


def test_bad_setting_fails_at_config_time(make_app):
    with pytest.raises(ConfigurationError, match='tgstream.transaction'):
        make_app(settings={'tgstream.transaction': 'sometimes'})
