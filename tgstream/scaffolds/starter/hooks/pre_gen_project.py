"""Refuse a repo_name that cannot be a Python package name."""
import keyword
import re
import sys

NAME = '{{ cookiecutter.repo_name }}'
RESERVED = {'tgstream', 'pyramid', 'test', 'tests', 'site'}

if not re.match(r'^[a-z_][a-z0-9_]*$', NAME) or keyword.iskeyword(NAME) or NAME in RESERVED:
    sys.stderr.write(
        'error: repo_name %r is not usable as a Python package name: use '
        'lowercase letters, digits and underscores, not starting with a digit '
        '(and not one of %s)\n' % (NAME, ', '.join(sorted(RESERVED)))
    )
    sys.exit(1)
