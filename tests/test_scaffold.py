"""The cookiecutter template in scaffolds/ and the ``tgstream-create`` command.

The slow test does what a user does: render the template, install the
project into a fresh virtualenv together with this checkout of tgstream,
and run the generated project's own tests (and its database scripts).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

cookiecutter_main = pytest.importorskip('cookiecutter.main')
from cookiecutter.exceptions import FailedHookException  # noqa: E402

from tgstream.scaffold import TEMPLATES, main, template_path  # noqa: E402

CHECKOUT = Path(__file__).resolve().parents[1]

EXPECTED_FILES = {
    '.gitignore', 'README.md', 'pyproject.toml', 'development.ini', 'production.ini',
    'PKG/__init__.py', 'PKG/routes.py', 'PKG/models/__init__.py', 'PKG/models/meta.py',
    'PKG/models/item.py', 'PKG/views/__init__.py', 'PKG/views/default.py',
    'PKG/views/notfound.py', 'PKG/scripts/__init__.py', 'PKG/scripts/initialize_db.py',
    'PKG/templates/layout.jinja2', 'PKG/templates/home.jinja2', 'PKG/templates/404.jinja2',
    'PKG/static/style.css', 'tests/conftest.py', 'tests/test_views.py',
    'tests/test_initialize_db.py',
}
ALEMBIC_FILES = {'alembic/env.py', 'alembic/script.py.mako', 'alembic/versions/20250101_0001.py'}


def render(tmp_path: Path, **context: str) -> Path:
    return Path(cookiecutter_main.cookiecutter(
        str(template_path()), no_input=True, output_dir=str(tmp_path), extra_context=context,
    ))


def files_of(project: Path) -> set[str]:
    package = project.name
    return {
        str(p.relative_to(project)).replace(package + os.sep, 'PKG/', 1).replace(os.sep, '/')
        for p in project.rglob('*') if p.is_file()
    }


def test_no_input_gives_a_ready_project(tmp_path):
    project = render(tmp_path)
    assert project.name == 'my_stream_app'
    assert files_of(project) == EXPECTED_FILES
    for path in project.rglob('*.py'):
        compile(path.read_text(), str(path), 'exec')  # every template rendered
    for path in project.rglob('*'):
        if path.is_file() and path.suffix != '.jinja2':
            assert '{{' not in path.read_text() and '{%' not in path.read_text(), path
    init = (project / 'my_stream_app' / '__init__.py').read_text()
    assert "config.include('tgstream')" in init
    views = (project / 'my_stream_app' / 'views' / 'default.py').read_text()
    assert "@expose('json', route_name='items', stream=True)" in views
    assert "filename='items.csv'" in views  # expose's TurboGears keywords
    assert 'pyramid_debugtoolbar' in (project / 'development.ini').read_text()
    production = (project / 'production.ini').read_text()
    assert 'pyramid_debugtoolbar\n' not in production and 'gthread' in production
    assert '[alembic]' not in (project / 'development.ini').read_text()


def test_alembic_is_optional(tmp_path):
    project = render(tmp_path, project_name='Shop Feed', use_alembic='yes')
    assert project.name == 'shop_feed'
    assert files_of(project) == EXPECTED_FILES | ALEMBIC_FILES
    assert '[alembic]' in (project / 'development.ini').read_text()
    assert '"alembic",' in (project / 'pyproject.toml').read_text()
    assert 'from shop_feed.models.meta import Base' in (project / 'alembic/env.py').read_text()


@pytest.mark.parametrize('name', ['1st_app', 'my-app', 'class', 'tgstream'])
def test_unusable_package_names_are_refused(tmp_path, name):
    with pytest.raises(FailedHookException):
        render(tmp_path, repo_name=name)
    assert not (tmp_path / name).exists()


def test_tgstream_create_command(tmp_path, capfd):
    assert main(['--no-input', '-o', str(tmp_path), 'project_name=Cmd App']) == 0
    assert (tmp_path / 'cmd_app' / 'cmd_app' / 'views' / 'default.py').is_file()
    assert 'initialize_cmd_app_db development.ini' in capfd.readouterr().out


def test_tgstream_create_reports_cookiecutter_errors(tmp_path):
    assert main(['--no-input', '-o', str(tmp_path), 'repo_name=1bad']) != 0
    assert not (tmp_path / '1bad').exists()


def test_template_lookup():
    assert template_path() == TEMPLATES / 'starter'
    assert (CHECKOUT / 'scaffolds' / 'starter').resolve() == template_path()
    with pytest.raises(LookupError, match="no tgstream template 'nope'; there are: starter"):
        template_path('nope')


def run(args, cwd, timeout, env=None):
    """Run ``args``; fail with its output if it fails or takes too long."""
    try:
        done = subprocess.run(
            [str(a) for a in args], cwd=cwd, env=env, timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail('%s timed out after %ss:\n%s' % (args, timeout, exc.output))
    if done.returncode != 0:
        pytest.fail('%s failed (%s):\n%s' % (args, done.returncode, done.stdout[-6000:]))
    return done.stdout


def readme_commands(project: Path) -> str:
    """The generated README's "Getting started" commands, but the server."""
    text = (project / 'README.md').read_text()
    block = text.split('```sh\n', 1)[1].split('```', 1)[0]
    lines = [line for line in block.splitlines() if not line.startswith('pserve ')]
    assert lines[0] == 'cd %s' % project.name and 'pytest' in lines
    return '\n'.join(lines)


@pytest.mark.slow
@pytest.mark.parametrize('options', [[], ['project_name=Shop Feed', 'use_alembic=yes']])
def test_generated_project_installs_as_its_readme_says(tmp_path, options):
    """tgstream-create, then the generated README's commands as they are
    written, in a fresh virtualenv that has nothing installed: the project's
    requirement finds this checkout of tgstream (not the package index)."""
    assert main(['--no-input', '-o', str(tmp_path)] + options) == 0
    project, = (p for p in tmp_path.iterdir() if p.is_dir())
    assert 'tgstream @ %s' % CHECKOUT.as_uri() in (project / 'pyproject.toml').read_text()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK='1', PYTHONDONTWRITEBYTECODE='1',
               PIP_QUIET='1', PATH=os.pathsep.join(
                   p for p in env.get('PATH', '').split(os.pathsep)
                   if not p.startswith(sys.prefix)))
    script = 'set -e\n%s\npip freeze\n' % readme_commands(project)
    out = run(['bash', '-c', script], tmp_path, 900, env)
    assert 'added 1000 item(s)' in out
    assert ' passed' in out and 'failed' not in out, out
    assert 'tgstream @ %s' % CHECKOUT.as_uri() in out  # pip freeze


def test_requirement_follows_where_tgstream_comes_from(tmp_path):
    from importlib.metadata import PathDistribution

    from tgstream.scaffold import tgstream_requirement

    def dist(direct_url=None):
        info = tmp_path / ('d%d' % len(list(tmp_path.iterdir()))) / 'tgstream-1.2.dist-info'
        info.mkdir(parents=True)
        (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: tgstream\nVersion: 1.2\n')
        if direct_url is not None:
            (info / 'direct_url.json').write_text(direct_url)
        return PathDistribution(info)

    assert tgstream_requirement(dist()) == 'tgstream >= 1.2'
    assert tgstream_requirement(dist(
        '{"url": "file:///src/tgstream", "dir_info": {"editable": true}}'
    )) == 'tgstream @ file:///src/tgstream'
    assert tgstream_requirement(dist(
        '{"url": "file:///w/tgstream-1.2-py3-none-any.whl", "archive_info": {}}'
    )) == 'tgstream @ file:///w/tgstream-1.2-py3-none-any.whl'
    assert tgstream_requirement(dist(
        '{"url": "https://github.com/x/tgstream", '
        '"vcs_info": {"vcs": "git", "commit_id": "abc123"}}'
    )) == 'tgstream @ git+https://github.com/x/tgstream@abc123'
    # the running one: this checkout
    assert tgstream_requirement() == 'tgstream @ %s' % CHECKOUT.as_uri()


def test_generated_project_listens_next_to_the_demo(tmp_path):
    project = render(tmp_path)
    demo = (CHECKOUT / 'development.ini').read_text()
    assert 'listen = localhost:6543' in demo
    assert 'listen = localhost:6544' in (project / 'development.ini').read_text()
    assert 'localhost:6544/items' in (project / 'README.md').read_text()


@pytest.mark.slow
def test_sdist_and_wheel_ship_the_template_and_the_demo(tmp_path):
    """What PyPI users get (sdist, then a wheel built from it) has everything
    tgstream-create and the demo need. Built from a copy: nothing is written
    into the checkout."""
    source = tmp_path / 'src'
    shutil.copytree(CHECKOUT, source, symlinks=True, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'build', 'dist', '*.egg-info', '__pycache__', '.pytest_cache',
        '.hypothesis', '*.sqlite*'))
    run([sys.executable, 'setup.py', '-q', 'sdist', '-d', tmp_path / 'dist'], source, 300)
    sdist, = (tmp_path / 'dist').glob('tgstream-*.tar.gz')
    run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', tmp_path / 'dist',
         sdist], tmp_path, 300)
    wheel, = (tmp_path / 'dist').glob('tgstream-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    template = 'tgstream/scaffolds/starter/'
    project = template + '{{cookiecutter.repo_name}}/'
    for name in ('cookiecutter.json', 'hooks/pre_gen_project.py', 'hooks/post_gen_project.py'):
        assert template + name in names
    for name in EXPECTED_FILES | ALEMBIC_FILES:
        assert project + name.replace('PKG/', '{{cookiecutter.repo_name}}/') in names, name
    for name in ('index', 'live', 'layout', 'large_page'):
        assert 'tgstream/demo/templates/%s.jinja2' % name in names
    assert not any('__pycache__' in n or '.sqlite' in n for n in names)
    with tarfile.open(sdist) as tar:
        members = {m.split('/', 1)[1] for m in tar.getnames() if '/' in m}
    assert {'development.ini', 'production.ini', 'CHANGES.rst', 'MANIFEST.in'} <= members
    assert {'docs/conf.py', 'docs/index.rst', 'docs/api.rst', 'docs/examples/feeds.py'} <= members
    assert not any(m.startswith('docs/_build') for m in members)


def test_help_is_tgstream_creates_own(capsys):
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    assert out.startswith('Usage: tgstream-create [OPTIONS] [KEY=VALUE]...')
    assert 'TEMPLATE' not in out and 'cookiecutter.readthedocs' not in out
    # every option it lists is one cookiecutter's command accepts
    from cookiecutter.cli import main as cookiecutter_command
    known = {o for p in cookiecutter_command.params for o in p.opts} | {'-h', '--help'}
    listed = {w.rstrip(',') for line in out.splitlines() if line.startswith('  -')
              for w in line.split('  ')[1].split() if w.startswith('-')}
    assert listed <= known, listed - known


def test_version(capsys):
    from importlib.metadata import version

    assert main(['-V']) == 0
    assert capsys.readouterr().out == 'tgstream-create (tgstream %s)\n' % version('tgstream')


@pytest.mark.parametrize('args', [['gh:someone/template'], ['--checkout', 'main'], ['--replay']])
def test_another_template_is_refused(tmp_path, capsys, args):
    assert main(args + ['--no-input', '-o', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert 'not an option of tgstream-create' in err and args[0] in err
    assert not list(tmp_path.iterdir())


def test_the_generated_projects_wheel_has_its_static_files(tmp_path):
    """What ``pip install`` of the generated project (not editable) ships:
    the templates *and* the stylesheet the layout links to."""
    project = render(tmp_path / 'src')
    run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
         '-w', tmp_path / 'dist', project], tmp_path, 300)
    wheel, = (tmp_path / 'dist').glob('my_stream_app-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in EXPECTED_FILES:
        if name.startswith('PKG/') and not name.endswith('.py'):
            assert name.replace('PKG/', 'my_stream_app/') in names, name
