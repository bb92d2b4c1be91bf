"""Monitoring in SQL: drift against a stored reference, accuracy against ground truth,
humility rules at scoring time, alerts and reports. See :mod:`indb.monitoring.drift` for
the statistics and their exact and binned modes."""
