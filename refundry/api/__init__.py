"""The HTTP API (FastAPI): a thin shell over the services. ``create_app`` builds it."""
