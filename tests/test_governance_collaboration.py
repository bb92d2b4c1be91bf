"""Collaboration (issue 14.6) on both backends: owners, comments, descriptions and tags on
models, feature sets, monitors and jobs, and search over them; PostgreSQL as real login roles."""

from __future__ import annotations

import pytest

from indb.errors import NotFoundError
from indb.governance import collaboration
from tests.conftest import NUMERIC


def test_the_catalog_lists_every_model_with_empty_owners_and_comments(db, logistic, loans):
    db.register_model("loans", logistic, sample=loans[NUMERIC], description="repayment", tags={"team": "credit"})
    objects = db.sql("SELECT object_kind, object_name, description, owners FROM indb.catalog_objects")
    assert objects.to_dict("records") == [
        {"object_kind": "model", "object_name": "loans", "description": "repayment", "owners": None}
    ]
    assert collaboration.owners(db.backend, "model", "loans").empty
    assert collaboration.comments(db.backend, "model", "loans").empty
    with pytest.raises(NotFoundError, match="model 'loan' does not exist; did you mean 'loans'"):
        collaboration.owners(db.backend, "model", "loan")
