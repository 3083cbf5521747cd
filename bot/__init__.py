"""bot — the LINE counseling bot (Flask webhook, sessions in SQLite, llama.cpp generation)."""


def create_app(*args, **kwargs):
    from .app import create_app as _create

    return _create(*args, **kwargs)
