-- Feature store: catalog statements (bound $parameters) and per-feature-set DDL templates
-- whose {slots} take only identifiers quoted by indb.identifiers or fragments rendered from
-- sqlglot trees (feature_store/trees.py). The point-in-time join, ingestion and online
-- look-ups are built as trees in Python (feature_store/pit.py, sets.py, online.py).

-- name: get_entity
SELECT name, keys, description, created_at FROM indb.entities WHERE name = $name;

-- name: list_entity_names
SELECT name FROM indb.entities ORDER BY name;

-- name: insert_entity
INSERT INTO indb.entities (name, keys, description, created_by)
VALUES ($name, $keys, $description, $created_by);

-- name: get_feature_set
SELECT name, version, entity, keys, event_time, created_time, ttl_seconds, table_name,
       online_table, schema_hash, source, description, created_at
FROM indb.feature_sets WHERE name = $name AND version = $version;

-- name: find_feature_set
-- One version of a feature set (the newest when $version is NULL) with its features, one row
-- per feature in order, in one statement: a training set reads this once per feature set.
SELECT s.version, s.entity, s.keys, s.event_time, s.created_time, s.ttl_seconds, s.table_name,
       s.online_table, s.description, f.name, f.data_type, f.description
FROM indb.feature_sets AS s
LEFT JOIN indb.features AS f ON f.feature_set = s.name AND f.version = s.version
WHERE s.name = $name
  AND s.version = coalesce(CAST($version AS BIGINT),
                           (SELECT max(v.version) FROM indb.feature_sets AS v WHERE v.name = $name))
ORDER BY f.position;

-- name: latest_feature_set_version
SELECT max(version) AS version FROM indb.feature_sets WHERE name = $name;

-- name: list_feature_set_names
SELECT DISTINCT name FROM indb.feature_sets ORDER BY name;

-- name: list_feature_sets
SELECT name, version, entity, keys, event_time, created_time, ttl_seconds, table_name,
       online_table, description, created_at
FROM indb.feature_sets ORDER BY name, version;

-- name: insert_feature_set
INSERT INTO indb.feature_sets
    (name, version, entity, keys, event_time, created_time, ttl_seconds, table_name, online_table,
     schema_hash, source, description, created_by)
VALUES
    ($name, $version, $entity, $keys, $event_time, $created_time, $ttl_seconds, $table_name,
     $online_table, $schema_hash, $source, $description, $created_by);

-- name: get_time_ties
SELECT time_ties, ties_checked FROM indb.feature_sets WHERE name = $name AND version = $version;

-- name: set_time_ties
UPDATE indb.feature_sets SET time_ties = time_ties OR $found, ties_checked = $batch
WHERE name = $name AND version = $version;

-- name: update_feature_set
UPDATE indb.feature_sets SET ttl_seconds = $ttl_seconds, description = $description
WHERE name = $name AND version = $version;

-- name: insert_feature
INSERT INTO indb.features (feature_set, version, name, position, data_type, description)
VALUES ($feature_set, $version, $name, $position, $data_type, $description);

-- name: next_training_set_version
SELECT coalesce(max(version), 0) + 1 AS version FROM indb.training_sets WHERE name = $name;

-- name: get_training_set
SELECT name, version, table_name, definition, spine, label, ttl_seconds, cutoff, row_count,
       content_hash, description, created_at
FROM indb.training_sets WHERE name = $name AND version = $version;

-- name: get_training_set_lineage
SELECT feature_set, feature_set_version FROM indb.training_set_features
WHERE training_set = $name AND version = $version ORDER BY feature_set;

-- name: latest_training_set_version
SELECT max(version) AS version FROM indb.training_sets WHERE name = $name;

-- name: list_training_set_names
SELECT DISTINCT name FROM indb.training_sets ORDER BY name;

-- name: insert_training_set
INSERT INTO indb.training_sets
    (name, version, table_name, definition, spine, label, ttl_seconds, cutoff, row_count,
     content_hash, description, created_by)
VALUES
    ($name, $version, $table_name, $definition, $spine, $label, $ttl_seconds, $cutoff, $row_count,
     $content_hash, $description, $created_by);

-- name: insert_training_set_features
INSERT INTO indb.training_set_features (training_set, version, feature_set, feature_set_version, features)
VALUES ($training_set, $version, $feature_set, $feature_set_version, $features);

-- name: insert_model_training_set
INSERT INTO indb.model_training_sets (model, version, training_set, training_set_version)
VALUES ($model, $version, $training_set, $training_set_version);

-- name: delete_statistics
DELETE FROM indb.feature_statistics WHERE scope = $scope AND name = $name AND version = $version;

-- name: insert_statistics
INSERT INTO indb.feature_statistics
    (scope, name, version, feature, data_type, kind, count, nulls, distinct_count, min, max, mean,
     stddev, quantiles, histogram, top_values)
VALUES
    ($scope, $name, $version, $feature, $data_type, $kind, $count, $nulls, $distinct_count, $min,
     $max, $mean, $stddev, $quantiles, $histogram, $top_values);

-- name: create_sequence
CREATE SEQUENCE IF NOT EXISTS {sequence};

-- name: create_history_table
-- Every ingested row; _indb_seq orders rows that share an entity and an event time: the
-- sequence numbers batches (a row inserted with plain SQL is a batch of its own), the low 32
-- bits the row within its batch.
CREATE TABLE {table} (
    {columns},
    _indb_seq BIGINT NOT NULL DEFAULT nextval({sequence_literal}) * 4294967296
);

-- name: create_online_table
-- The latest row of each entity, kept current by a trigger on the history table.
CREATE TABLE {table} (
    {columns},
    _indb_seq BIGINT NOT NULL,
    PRIMARY KEY ({keys})
);

-- name: create_view
CREATE OR REPLACE VIEW {view} AS SELECT {columns} FROM {table};

-- name: drop_view
DROP VIEW IF EXISTS {view};

-- name: upsert_latest
-- The latest row per entity of {source} into the online table, unless it holds a later one.
INSERT INTO {online} ({columns}, _indb_seq)
SELECT {columns}, _indb_seq FROM {source}
QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order_desc}) = 1
ON CONFLICT ({keys}) DO UPDATE SET {assignments}
WHERE {order_excluded} > {order_current};


-- name: next_batch
SELECT nextval({sequence_literal}) AS batch;

-- name: count_tie_matches
-- Rows since the last check, and how many history rows share their entity and time (itself
-- included): more matches than rows means two rows tie on entity and time.
SELECT count(DISTINCT n._indb_seq) AS new_rows, count(*) AS matches
FROM (SELECT * FROM {table} WHERE _indb_seq >= $low) AS n
JOIN {table} AS h ON {on};

-- name: time_ties_state
-- Whether stored rows tie on entity and time, the last ingest batch checked, and the newest
-- row's sequence (rows added since the check may tie).
SELECT s.time_ties, s.ties_checked, (SELECT max(h._indb_seq) FROM {table} AS h) AS seq
FROM indb.feature_sets AS s WHERE s.name = $name AND s.version = $version;

-- name: delete_all
DELETE FROM {table};

-- name: table_summary
-- Row count and an order-independent content hash of a table.
SELECT count(*) AS n, coalesce(CAST(bit_xor(hash(t)) AS VARCHAR), '0') AS content_hash FROM {table} AS t;

-- name: numeric_statistics
SELECT count({column}) AS count, count(*) - count({column}) AS nulls,
       count(DISTINCT {column}) AS distinct_count,
       CAST(min({column}) AS DOUBLE) AS min, CAST(max({column}) AS DOUBLE) AS max,
       avg(CAST({column} AS DOUBLE)) AS mean, stddev_samp(CAST({column} AS DOUBLE)) AS stddev,
       quantile_cont(CAST({column} AS DOUBLE), [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]) AS quantiles
FROM {source};

-- name: histogram
-- Equal-width bins over [lo, hi]; the top edge falls in the last bin.
SELECT least(CAST(floor((CAST({column} AS DOUBLE) - $lo) / $width) AS BIGINT), $bins - 1) AS bin,
       count(*) AS n
FROM {source} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1;

-- name: categorical_statistics
SELECT count({column}) AS count, count(*) - count({column}) AS nulls,
       count(DISTINCT {column}) AS distinct_count
FROM {source};

-- name: top_values
SELECT CAST({column} AS VARCHAR) AS value, count(*) AS n
FROM {source} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $limit;
