"""The ``octopus`` command line (typer + rich)."""
