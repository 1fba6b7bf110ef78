"""Bugtracker's common library. Library code only: no service logic lives here."""
