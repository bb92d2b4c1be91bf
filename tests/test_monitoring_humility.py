"""Humility rules at scoring time: log, override and reject, with events in a table."""

from __future__ import annotations

import pytest

from indb.errors import ScoringError
from tests.conftest import NUMERIC

COLUMNS = NUMERIC + ["purpose"]
INSERT = "INSERT INTO requests (income, debt, age, tenure, purpose) VALUES "


def test_rules_log_override_and_reject(db, mixed_pipeline, loans):
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    db.add_humility_rule("requests", "income_range", "outside_range", "income", action="log")
    db.add_humility_rule(
        "requests", "new_purpose", "unseen_category", "purpose", action="override", override="default"
    )
    db.add_humility_rule("requests", "unsure", "uncertain", low=0.45, high=0.55, action="log")
    db.sql(
        INSERT + "(55000, 9000, 40, 3, 'car'), (9000000, 10, 30, 2, 'home'), (50000, 9000, 40, 3, 'yacht')"
    )
    scored = db.sql("SELECT id, prediction FROM requests_scored ORDER BY id")
    assert scored.prediction.iloc[2] == "default"  # overridden
    events = db.humility_events("requests")
    caught = {(e.rule, e.row_id, e.action) for e in events.itertuples()}
    assert ("income_range", 2, "log") in caught and ("new_purpose", 3, "override") in caught
    assert not [e for e in caught if e[1] == 1 and e[0] != "unsure"]
    assert float(events.set_index("rule").value["income_range"]) == 9_000_000

    db.add_humility_rule("requests", "no_minors", "outside_range", "age", low=18, high=120, action="reject")
    with pytest.raises(ScoringError, match="humility rule no_minors rejects row id .* age = 12"):
        db.sql(INSERT + "(55000, 9000, 40, 3, 'car'), (55000, 9000, 12, 3, 'car')")
    assert len(db.sql("SELECT * FROM requests")) == 3  # the whole statement was rolled back
    assert len(db.sql("SELECT * FROM requests_predictions")) == 3

    db.remove_humility_rule("requests", "no_minors")
    db.deploy("m", table="requests")  # a redeploy keeps the rules after the scoring trigger
    db.sql(INSERT + "(55000, 9000, 12, 3, 'boat')")
    last = db.sql("SELECT prediction FROM requests_predictions ORDER BY id DESC LIMIT 1")
    assert last.prediction.iloc[0] == "default"


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_humility_function_runs_only_for_its_own_table(db, mixed_pipeline, loans):
    """indb.humility_<t>() is SECURITY DEFINER: attached to another table (by anyone who was
    given EXECUTE by mistake) it refuses before it writes anything."""
    db.register_model("m", mixed_pipeline, sample=loans[COLUMNS])
    db.deploy("m", table="requests")
    db.add_humility_rule("requests", "income_range", "outside_range", "income", action="log")
    db.sql("CREATE TABLE other (LIKE requests INCLUDING DEFAULTS)")
    db.sql(
        "CREATE TRIGGER steal AFTER INSERT ON other REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION indb.humility_requests()"
    )
    with pytest.raises(Exception, match="not the deployed table"):
        db.sql("INSERT INTO other (id, income, debt, age, tenure, purpose) VALUES (1, 9e6, 1, 30, 2, 'car')")
    assert db.sql("SELECT count(*) AS n FROM indb.humility_events").n[0] == 0
