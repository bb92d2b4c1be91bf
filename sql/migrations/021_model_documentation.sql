-- Model documentation (issue 14.5): the free-text fields of a model card that the catalog cannot
-- derive (purpose, intended use, known limitations, ethical considerations). One row per model
-- (version NULL: every version) and per version that overrides it field by field. Written by
-- db.document_model (audited); on PostgreSQL only through the SECURITY DEFINER function
-- indb.document_model (sql/postgres/model_card.sql), which developers may call and readers may
-- not, and which records session_user as updated_by.

CREATE TABLE IF NOT EXISTS indb.model_documentation (
    model                 VARCHAR NOT NULL,
    version               INTEGER,
    purpose               VARCHAR,
    intended_use          VARCHAR,
    limitations           VARCHAR,
    ethical_considerations VARCHAR,
    updated_by            VARCHAR NOT NULL,
    updated_at            TIMESTAMP NOT NULL DEFAULT (current_timestamp AT TIME ZONE 'UTC')
);
COMMENT ON TABLE indb.model_documentation IS 'Free-text documentation of a model for its model card (indb models doc): purpose, intended use, known limitations, ethical considerations; version NULL applies to every version, a version''s row overrides it field by field. One row per (model, version).';
