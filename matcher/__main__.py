"""Allows `python -m matcher`."""

from matcher.cli import cli

if __name__ == "__main__":
    cli()
