"""``Content-Disposition`` for downloads (RFC 6266, RFC 8187), safe for any name.

Download names often come from user input (a report title, an uploaded
file's name). :func:`content_disposition` turns any ``str`` into a header
value that is printable ASCII only -- no CR, LF, NUL or other control
character can reach the header, so header injection is impossible -- and
that names the file as closely as the input allows.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

#: The name used when nothing usable is left of the given one.
DEFAULT_FILENAME = 'download'

DISPOSITIONS = ('attachment', 'inline')

# Characters that never belong in a file name: C0/C1 controls and DEL (Cc),
# lone surrogates (Cs, not encodable as UTF-8), line and paragraph
# separators (Zl, Zp) and the invisible bidi controls used to disguise an
# extension ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf").
_BIDI_CONTROLS = frozenset('\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e'
                           '\u2066\u2067\u2068\u2069')
_BAD_CATEGORIES = frozenset(('Cc', 'Cs', 'Zl', 'Zp'))

# RFC 8187 attr-char, less what urllib.parse.quote always keeps
# (letters, digits and "_.-~").
_ATTR_CHAR_EXTRA = "!#$&+^`|"

# In the quoted ASCII fallback: printable ASCII, less the characters user
# agents treat inconsistently (RFC 6266 appendix D: backslash escapes and
# "%" sequences) or that naive parsers split on, and path separators.
_FALLBACK_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\%;/]')


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(r'%s/%s(?:[ \t]*;[\x20-\x7e\t]*)?\Z' % (_TOKEN, _TOKEN))


def is_media_type(value: object) -> bool:
    """Is ``value`` a ``Content-Type`` header value a server will accept?

    ``type/subtype`` tokens, then optional parameters, printable ASCII only:
    no CR, LF, NUL or other control character (a server rejects those in
    ``start_response``, after the stream was handed over).
    """
    return isinstance(value, str) and _MEDIA_TYPE.match(value) is not None


def _clean(char: str) -> str:
    if char in _BIDI_CONTROLS or unicodedata.category(char) in _BAD_CATEGORIES:
        return '_'
    return char


def safe_filename(filename: str) -> str:
    """The file name :func:`content_disposition` announces for ``filename``.

    Only the base name is kept (directories are dropped, for ``/`` and
    ``\\`` alike), control characters, lone surrogates, line separators and
    bidi controls become ``_``, surrounding white space goes, and a name
    with nothing left (empty, blank, ``.``, ``..``) becomes
    :data:`DEFAULT_FILENAME`. Nothing else is changed: no Unicode
    normalisation, no length limit.
    """
    if not isinstance(filename, str):
        raise TypeError(
            'a download file name must be str, not %s' % type(filename).__name__
        )
    base = re.split(r'[/\\]', filename)[-1]
    name = ''.join(map(_clean, base.strip())).strip()
    if not name.strip('.'):
        return DEFAULT_FILENAME
    return name


def _ascii_fallback(name: str) -> str:
    # "Résumé.csv" -> "Resume.csv": decompose, drop the combining marks, then
    # replace whatever is still unsafe or not ASCII.
    decomposed = unicodedata.normalize('NFKD', name)
    stripped = ''.join(c for c in decomposed if not unicodedata.combining(c))
    fallback = _FALLBACK_UNSAFE.sub('_', stripped).strip()
    if not fallback.strip('.'):
        return DEFAULT_FILENAME
    return fallback


def content_disposition(filename: str, disposition: str = 'attachment') -> str:
    """A ``Content-Disposition`` header value naming the download ``filename``.

    ``disposition`` is ``'attachment'`` (save the file) or ``'inline'``
    (display it); anything else is a :class:`ValueError`. The name is first
    reduced by :func:`safe_filename` (base name only, no control
    characters). A name that is printable ASCII without ``" \\ % ;`` is
    sent as ``filename="..."``. Any other name is sent exactly as
    ``filename*=UTF-8''<percent-encoded>`` (RFC 8187), followed by an
    ASCII approximation as ``filename="..."`` for clients that do not read
    ``filename*`` (RFC 6266 clients prefer ``filename*``; putting it first
    also lets parsers that keep the first of two parameters, such as the
    standard library's :mod:`email` package, see the exact name).

    The result is printable ASCII: it never contains CR, LF or NUL.

    Example::

        >>> content_disposition('../Résumé "2024".csv')
        'attachment; filename*=UTF-8\\'\\'R%C3%A9sum%C3%A9%20%222024%22.csv; filename="Resume _2024_.csv"'

    Per request: ``request.response.content_disposition =
    content_disposition(name)``; per view: the ``stream_filename=`` view
    option (``expose(filename=...)``).
    """
    kind = disposition.lower() if isinstance(disposition, str) else disposition
    if kind not in DISPOSITIONS:
        raise ValueError(
            'disposition=%r is not valid; use %s'
            % (disposition, ' or '.join(repr(d) for d in DISPOSITIONS))
        )
    name = safe_filename(filename)
    fallback = _ascii_fallback(name)
    if fallback == name:
        return '%s; filename="%s"' % (kind, name)
    return "%s; filename*=UTF-8''%s; filename=\"%s\"" % (
        kind,
        quote(name, safe=_ATTR_CHAR_EXTRA, encoding='utf-8'),
        fallback,
    )
