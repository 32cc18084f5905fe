"""``tgstream-create``: start a project from tgstream's cookiecutter template.

The template ships inside the package (``tgstream/scaffolds/starter``; the
checkout's top-level ``scaffolds/`` points at it). The command runs
cookiecutter on it and passes every argument through::

    pip install "tgstream[scaffold]"
    tgstream-create                      # asks for the project name
    tgstream-create --no-input project_name="Shop Feed" -o ~/src

cookiecutter is the ``scaffold`` extra; without it the command says so.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: the directory holding tgstream's cookiecutter templates
TEMPLATES = Path(__file__).resolve().with_name('scaffolds')


def template_path(name: str = 'starter') -> Path:
    """The directory of the packaged template ``name`` (for ``cookiecutter``).

    Raises ``LookupError`` naming the templates there are.
    """
    path = TEMPLATES / name
    if not (path / 'cookiecutter.json').is_file():
        known = sorted(p.name for p in TEMPLATES.iterdir() if (p / 'cookiecutter.json').is_file())
        raise LookupError('no tgstream template %r; there are: %s' % (name, ', '.join(known)))
    return path


def main(argv: list[str] | None = None) -> int:
    """Run cookiecutter's command line on the ``starter`` template."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from cookiecutter.cli import main as cookiecutter_command
    except ImportError:
        sys.stderr.write(
            'tgstream-create needs cookiecutter: pip install "tgstream[scaffold]"\n'
        )
        return 2
    try:
        cookiecutter_command.main(
            args=[str(template_path())] + args, prog_name='tgstream-create'
        )
    except SystemExit as exc:  # click exits; return its status instead
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
