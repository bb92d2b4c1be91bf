-- Humility rules: checks at scoring time on a bulk deployment. The log trigger (after the
-- scoring trigger) records every row a rule catches in indb.humility_events and raises for
-- reject rules; the override trigger then replaces the prediction of rows an override rule
-- caught. {checks} is one SELECT per rule, over the inserted rows {rows} (the backend's
-- inserted_rows); {slots} are quoted identifiers.

-- name: insert_rule
INSERT INTO indb.humility_rules (deployment, name, kind, feature, low, high, action, override)
VALUES ($deployment, $name, $kind, $feature, $low, $high, $action, $override);

-- name: insert_category
INSERT INTO indb.humility_categories (deployment, rule, category) VALUES ($deployment, $rule, $category);

-- name: rules
SELECT name, kind, feature, low, high, action, override FROM indb.humility_rules
WHERE deployment = $deployment ORDER BY id;

-- name: delete_rule
DELETE FROM indb.humility_rules WHERE deployment = $deployment AND name = $name;

-- name: delete_categories
DELETE FROM indb.humility_categories WHERE deployment = $deployment AND rule = $name;

-- name: events
SELECT id, rule, row_id, feature, value, action, logged_at FROM indb.humility_events
WHERE deployment = $deployment ORDER BY id;

-- name: check_outside_range
SELECT r.name AS rule, n.id AS row_id, r.feature, CAST(n.{column} AS VARCHAR) AS value, r.action
FROM {rows} AS n JOIN indb.humility_rules AS r ON r.deployment = {deployment} AND r.name = {rule}
WHERE n.{column} < r.low OR n.{column} > r.high

-- name: check_unseen_category
SELECT r.name AS rule, n.id AS row_id, r.feature, CAST(n.{column} AS VARCHAR) AS value, r.action
FROM {rows} AS n JOIN indb.humility_rules AS r ON r.deployment = {deployment} AND r.name = {rule}
WHERE n.{column} IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM indb.humility_categories AS c
    WHERE c.deployment = r.deployment AND c.rule = r.name AND c.category = CAST(n.{column} AS VARCHAR)
)

-- name: check_uncertain
SELECT r.name AS rule, n.id AS row_id, r.feature, CAST(p.{column} AS VARCHAR) AS value, r.action
FROM {rows} AS n JOIN {predictions} AS p ON p.id = n.id{served}
JOIN indb.humility_rules AS r ON r.deployment = {deployment} AND r.name = {rule}
WHERE p.{column} >= r.low AND p.{column} <= r.high

-- name: log_events
INSERT INTO indb.humility_events (deployment, rule, row_id, feature, value, action)
SELECT {deployment}, c.rule, c.row_id, c.feature, c.value,
       CASE WHEN c.action = 'reject'
            THEN CAST({fail}('ScoringError: humility rule ' || c.rule || ' rejects row id ' || CAST(c.row_id AS VARCHAR)
                             || ' of ' || {deployment} || ': ' || c.feature || ' = ' || coalesce(c.value, 'NULL')) AS VARCHAR)
            ELSE c.action END
FROM ({checks}) AS c

-- name: apply_overrides
UPDATE {predictions} SET prediction = o.value
FROM (
    SELECT e.row_id, min(CAST(r.override AS {prediction_type})) AS value
    FROM indb.humility_events AS e
    JOIN indb.humility_rules AS r ON r.deployment = e.deployment AND r.name = e.rule
    WHERE e.deployment = {deployment} AND e.action = 'override' AND e.row_id IN (SELECT id FROM {rows})
    GROUP BY e.row_id
) AS o
WHERE {predictions}.id = o.row_id{served_here}
