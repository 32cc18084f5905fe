"""The deployment recipes the docs give, read from the pages themselves, so
that the tests which run them and the files which repeat them check the text
a user copies."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PRODUCTION_RST = CHECKOUT / 'docs' / 'production.rst'


def nginx_directives(text: str) -> list[str]:
    """The directives of the first ``location / { ... }`` block in ``text``
    (comments, ``#`` prefixes of an ini file and ``proxy_pass`` dropped)."""
    match = re.search(r'location / \{(.*?)\}', text, re.S)
    assert match, 'no "location / { ... }" block found'
    directives = []
    for line in match.group(1).splitlines():
        line = line.strip().lstrip('#').split('#', 1)[0].strip()
        if line and not line.startswith('proxy_pass'):
            directives.append(line)
    return directives


def documented_nginx_recipe() -> list[str]:
    """The nginx recipe of docs/production.rst ("The nginx recipe ...")."""
    text = PRODUCTION_RST.read_text()
    return nginx_directives(text[text.index('The nginx recipe'):])


def documented_waitress_settings() -> dict[str, str]:
    """The ``[server:main]`` settings docs/production.rst recommends."""
    text = PRODUCTION_RST.read_text()
    block = text[text.index('[server:main]'):]
    block = block[:block.index('\n\n')]
    return ini_settings('\n'.join(line.strip() for line in block.splitlines()), 'server:main')


def ini_settings(text: str, section: str) -> dict[str, str]:
    """One section of an ini file, as PasteDeploy reads it (no interpolation:
    a scaffold's file still holds its template's ``%%``)."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=None)
    parser.read_string(text)
    return dict(parser.items(section))
