"""Every page of the site is a test item: the page engine's pytest plugin (pagekit/pytest_plugin.py)."""
pytest_plugins = ["pagekit.pytest_plugin"]
