"""The demo's views, one module per group of the index page."""
