-- PostgreSQL versions of feature store statements.

-- name: upsert_latest
INSERT INTO {online} ({columns}, _indb_seq)
SELECT DISTINCT ON ({keys}) {columns}, _indb_seq FROM {source}
ORDER BY {keys}, {order_desc}
ON CONFLICT ({keys}) DO UPDATE SET {assignments}
WHERE {order_excluded} > {order_current};

-- name: create_history_index
-- Point-in-time joins read the latest row per entity at or before a time from this index.
-- {columns}: the entity keys, then the order that says which row is the latest (DESC).
CREATE INDEX {index} ON {table} ({columns});

-- name: table_summary
SELECT count(*) AS n, coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '0') AS content_hash
FROM {table} AS t;

-- name: numeric_statistics
SELECT count({column}) AS count, count(*) - count({column}) AS nulls,
       count(DISTINCT {column}) AS distinct_count,
       min({column})::float8 AS min, max({column})::float8 AS max,
       avg({column}::float8) AS mean, stddev_samp({column}::float8) AS stddev,
       percentile_cont(ARRAY[0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
           WITHIN GROUP (ORDER BY {column}::float8) AS quantiles
FROM {source};

-- name: top_values
SELECT {column}::text AS value, count(*) AS n
FROM {source} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $limit;
