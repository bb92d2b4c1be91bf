"""Jobs: scheduled, recorded work (``indb.jobs``, ``indb.job_runs``).

On PostgreSQL pg_cron runs ``CALL indb.run_job(name)`` inside the server; on DuckDB a
scheduler thread in the process that holds the file, or ``indb scheduler``, runs due jobs.
Both use the same tables; what a job does is an action from :mod:`indb.jobs.actions`.
"""
