"""Governance: stages and approvals, models as files, lineage, documentation."""
