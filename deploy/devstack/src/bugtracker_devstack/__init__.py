"""Runs Bugtracker on one machine without containers: PostgreSQL and RabbitMQ as child
processes with data in a directory of ours, the schema bootstrap, migrations and the five
processes. Used by `make up` and by the test suite."""
