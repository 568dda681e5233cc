"""Example theta backends, registered through entry points (see pyproject.toml)."""
