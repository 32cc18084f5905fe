from setuptools import find_packages, setup

with open('README.rst', encoding='utf-8') as f:
    README = f.read()
with open('CHANGES.rst', encoding='utf-8') as f:
    CHANGES = f.read()

# Runtime: Pyramid only. Everything else is an extra.
requires = ['pyramid >= 2.0']

extras = {
    # what tgstream's transaction support works with
    'sqlalchemy': [
        'pyramid_tm >= 2.4',
        'transaction >= 3.0',
        'zope.sqlalchemy >= 1.6',
        'SQLAlchemy >= 1.4',
    ],
    # a faster JSON encoder for the json/ndjson/sse renderers
    'fast': ['orjson >= 3.9'],
    # streamed templates
    'jinja2': ['pyramid_jinja2 >= 2.10'],
    # tgstream-create: a new project from the packaged cookiecutter template
    'scaffold': ['cookiecutter >= 2.1'],
    # the browser test of the demo's /live page (with a system Chromium)
    'browser': ['playwright >= 1.40'],
    # OpenTelemetry: spans and metrics that cover the whole stream
    # (tgstream.otel), the Pyramid instrumentation, the Prometheus exporter
    'otel': [
        'opentelemetry-api >= 1.27',
        'opentelemetry-sdk >= 1.27',
        'opentelemetry-instrumentation-pyramid >= 0.48b0',
        'opentelemetry-exporter-prometheus >= 0.48b0',
    ],
}
# the documentation site (docs/): sphinx-build -W, and its doctests, which
# drive the examples through WebTest and show orjson's output (hence 'fast')
# (and the API reference imports tgstream.otel's modules: the otel extra)
extras['docs'] = ['Sphinx >= 7', 'furo', 'WebTest >= 3'] + extras['fast'] + extras['otel']
# live streams: the PostgreSQL backend (psycopg 3 >= 3.1.14 cooperates with
# gevent by itself) and gunicorn's gevent worker for many streams per process
extras['live'] = extras['sqlalchemy'] + [
    'psycopg >= 3.2',
    'gevent >= 23.9',
    'gunicorn >= 21',
]
# the demo's output is what the README shows: orjson's, hence 'fast'
extras['demo'] = extras['sqlalchemy'] + extras['jinja2'] + extras['fast'] + [
    'pyramid_retry',
    'pyramid_debugtoolbar',
    'plaster_pastedeploy',
    'waitress',
]
# the other WSGI servers of tgstream's server matrix (tests/live/
# test_servers_matrix.py); uWSGI compiles with gcc and the Python headers.
# mod_wsgi is not here: it must be built against a Python Apache's children
# can read, in an environment of its own (see .ci/run).
extras['servers'] = ['uwsgi >= 2.0', 'cheroot >= 10', 'Werkzeug >= 3', 'gunicorn >= 21', 'gevent >= 23.9']
extras['testing'] = sorted(
    set(extras['demo'] + extras['fast'] + extras['live'] + extras['browser'])
    | set(extras['otel'])
    | set(extras['servers'])
    | {
        # the SQL spans of tests/test_otel_*.py (its async wrapper: greenlet)
        'opentelemetry-instrumentation-sqlalchemy',
        'greenlet',
        'pytest >= 7',
        'WebTest >= 3',
        'httpx',
        'psycopg[binary] >= 3.1',
        'hypothesis',
        'gunicorn',
        'cookiecutter',
        'Flask',
        # the reference the CSV formula guard is tested against
        'defusedcsv >= 2.0',
        # a popular add-on with a content_type view predicate (issue 13)
        'cornice',
        # what .ci/run checks besides the tests (lint, types, coverage)
        'ruff',
        'mypy',
        'pytest-cov',
        # .ci/release: build the sdist and wheel, check their metadata
        'build',
        'twine',
        # tests/test_scaffold.py builds the generated project's wheel offline
        'setuptools >= 64',
        'wheel',
    }
)

setup(
    name='tgstream',
    version='0.1.0',
    description=(
        'Streaming responses for Pyramid with the request, the transaction '
        'and the SQLAlchemy session still working while they stream'
    ),
    long_description=README + '\n\n' + CHANGES,
    long_description_content_type='text/x-rst',
    classifiers=[
        'Framework :: Pyramid',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3 :: Only',
        'Topic :: Internet :: WWW/HTTP :: WSGI',
    ],
    keywords='pyramid streaming wsgi transaction sqlalchemy turbogears',
    license='MIT',
    packages=find_packages(exclude=['tests', 'tests.*', 'benchmarks']),
    include_package_data=True,
    package_data={'tgstream': ['py.typed']},
    zip_safe=False,
    python_requires='>=3.10',
    install_requires=requires,
    extras_require=extras,
    entry_points={
        'paste.app_factory': ['demo = tgstream.demo:main'],
        'console_scripts': ['tgstream-create = tgstream.scaffold:main'],
    },
)
