"""Response headers for downloads (placeholder, see issue 9)."""
from __future__ import annotations


def content_disposition(filename: str, disposition: str = 'attachment') -> str:
    """A ``Content-Disposition`` header value that names a download.

    Placeholder: quotes the name; the security issue makes it RFC 6266-exact.
    """
    safe = ''.join(c if 32 <= ord(c) < 127 and c not in '"\\' else '_' for c in filename)
    return '%s; filename="%s"' % (disposition, safe)
