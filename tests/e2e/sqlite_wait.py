"""SQLAlchemy connect args for Airflow on SQLite in the backfill test.

The scheduler, the API server and the CLI share one SQLite file; a writer
waits up to a minute for the lock instead of failing after five seconds.
"""

CONNECT_ARGS = {"timeout": 60}
