#!/usr/bin/env python
"""Django's command-line utility for the reference app (used by scripts/compare-django.sh)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
