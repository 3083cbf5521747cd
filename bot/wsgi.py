"""gunicorn entry point (see Procfile): settings from the environment."""

from .app import create_app

app = create_app()
