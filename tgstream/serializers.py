"""Placeholder: filled in by its issue."""


def includeme(config):
    pass
