"""The ``attnserve`` command. Each subcommand lives with its package: ``export`` in export/cli.py,
``serve`` in service/cli.py; this package only puts them under one name."""
