"""``application`` for servers that load a module or a script (uWSGI,
mod_wsgi-express)."""
import os
import sys

# mod_wsgi-express loads this file by path: make the checkout importable
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))

from tests.pkgs.serversapp import make_app  # noqa: E402

application = make_app()
