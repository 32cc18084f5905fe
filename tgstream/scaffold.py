"""``tgstream-create``: start a project from tgstream's cookiecutter template.

The template ships inside the package (``tgstream/scaffolds/starter``; the
checkout's top-level ``scaffolds/`` points at it). The command runs
cookiecutter on it and passes every argument through::

    pip install -e ".[scaffold]"         # in a checkout of tgstream
    tgstream-create                      # asks for the project name
    tgstream-create --no-input project_name="Shop Feed" -o ~/src

cookiecutter is the ``scaffold`` extra; without it the command says so.

The generated ``pyproject.toml`` requires the tgstream that runs the command
(:func:`tgstream_requirement`): from a checkout or a wheel file that is a
direct reference (``tgstream @ file:///...``), so that the project's
``pip install -e ".[testing]"`` works in a fresh virtualenv before tgstream
is on the package index.
"""
from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

#: the directory holding tgstream's cookiecutter templates
TEMPLATES = Path(__file__).resolve().with_name('scaffolds')

USAGE = """\
Usage: tgstream-create [OPTIONS] [KEY=VALUE]...

  Create a Pyramid project that streams with tgstream, from tgstream's
  cookiecutter template ("starter"). KEY=VALUE pairs answer the template's
  questions ahead: project_name, repo_name, use_alembic (yes/no).

  Example: tgstream-create --no-input project_name="Shop Feed" -o ~/src

Options:
  --no-input                   Ask nothing: the defaults and KEY=VALUE pairs.
  -o, --output-dir PATH        Where to create the project (default: here).
  -f, --overwrite-if-exists    Write into an existing project directory.
  -s, --skip-if-file-exists    With -f: keep the files that exist.
  --config-file PATH           A cookiecutter user config file.
  --default-config             Ignore the user's cookiecutter config.
  -v, --verbose                Print what cookiecutter does.
  -V, --version                Print tgstream's version and exit.
  -h, --help                   Show this message and exit.

The project requires the tgstream that runs this command (its checkout or
wheel, until tgstream is on the package index); see docs/scaffold.rst.
"""
# cookiecutter options that choose another template or replay an old run:
# they make no sense for tgstream's own template
REFUSED = ('-c', '--checkout', '--directory', '--replay', '--replay-file', '--list-installed')


def template_path(name: str = 'starter') -> Path:
    """The directory of the packaged template ``name`` (for ``cookiecutter``).

    Raises ``LookupError`` naming the templates there are.
    """
    path = TEMPLATES / name
    if not (path / 'cookiecutter.json').is_file():
        known = sorted(p.name for p in TEMPLATES.iterdir() if (p / 'cookiecutter.json').is_file())
        raise LookupError('no tgstream template %r; there are: %s' % (name, ', '.join(known)))
    return path


def tgstream_requirement(dist: metadata.Distribution | None = None) -> str:
    """The requirement for the running tgstream, for a generated project.

    Run from a checkout (editable install): a direct reference to it,
    ``tgstream @ file:///path/to/checkout``; installed from a wheel or sdist
    file, a VCS or a URL: that (PEP 610's ``direct_url.json``); from a
    package index: ``tgstream >= <its version>``. ``dist`` (for tests) is
    the distribution to describe instead of the running one.
    """
    if dist is None:
        checkout = Path(__file__).resolve().parents[1]
        if (checkout / 'setup.py').is_file():
            return 'tgstream @ %s' % checkout.as_uri()
        # several "tgstream" metadata may be on sys.path (a checkout's
        # egg-info in the working directory): the installed one has a
        # direct_url.json when it did not come from an index
        found = list(metadata.distributions(name='tgstream'))
        with_url = [d for d in found if d.read_text('direct_url.json')]
        dist = (with_url or found or [metadata.distribution('tgstream')])[0]
    text = dist.read_text('direct_url.json')
    if not text:
        return 'tgstream >= %s' % dist.version
    info = json.loads(text)
    url = info['url']
    vcs = info.get('vcs_info')
    if vcs:
        url = '%s+%s@%s' % (vcs['vcs'], url, vcs.get('commit_id') or vcs.get('requested_revision'))
    return 'tgstream @ %s' % url


def main(argv: list[str] | None = None) -> int:
    """Run cookiecutter's command line on the ``starter`` template."""
    args = list(sys.argv[1:] if argv is None else argv)
    if '-h' in args or '--help' in args:
        sys.stdout.write(USAGE)
        return 0
    if '-V' in args or '--version' in args:
        sys.stdout.write('tgstream-create (tgstream %s)\n' % metadata.version('tgstream'))
        return 0
    refused = [a for a in args if a.split('=', 1)[0] in REFUSED
               or (not a.startswith('-') and '=' not in a and not _is_option_value(args, a))]
    if refused:
        sys.stderr.write(
            'tgstream-create: %s: not an option of tgstream-create (it always uses '
            "tgstream's own template; answers are KEY=VALUE)\n\n%s" % (' '.join(refused), USAGE)
        )
        return 2
    if not any(a.startswith('_tgstream_requirement=') for a in args):
        args.append('_tgstream_requirement=%s' % tgstream_requirement())
    try:
        from cookiecutter.cli import main as cookiecutter_command
    except ImportError:
        sys.stderr.write(
            'tgstream-create needs cookiecutter: pip install cookiecutter '
            '(or tgstream\'s "scaffold" extra)\n'
        )
        return 2
    try:
        cookiecutter_command.main(
            args=[str(template_path())] + args, prog_name='tgstream-create'
        )
    except SystemExit as exc:  # click exits; return its status instead
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _is_option_value(args: list[str], arg: str) -> bool:
    """Whether ``arg`` is the value of the option before it (``-o DIR``)."""
    i = args.index(arg)
    return i > 0 and args[i - 1] in ('-o', '--output-dir', '--config-file', '--debug-file')


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
