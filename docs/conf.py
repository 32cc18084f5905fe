"""Sphinx configuration of tgstream's documentation.

Build: ``pip install -e ".[docs]"``, then ``sphinx-build -W -b html docs
docs/_build/html``; run the examples: ``sphinx-build -W -b doctest docs
docs/_build/doctest``.
"""
import importlib.metadata
import os
import sys

# docs/examples/ holds the example modules the pages include and run
sys.path.insert(0, os.path.abspath('.'))
sys.path.insert(0, os.path.abspath('..'))

project = 'tgstream'
author = 'tgstream contributors'
copyright = '2026, tgstream contributors'
# the installed tgstream's version (setup.py is the one place it is written)
release = importlib.metadata.version('tgstream')

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.doctest',
    'sphinx.ext.viewcode',
]
html_theme = 'furo'
html_title = 'tgstream'
exclude_patterns = ['_build', 'examples']
templates_path = []
html_static_path = []

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': True}

# every doctest group starts from a fresh import of the examples
doctest_global_setup = '''
import webtest
'''
