-- Model documentation on PostgreSQL (issue 14.5): indb.model_documentation is written only
-- through this SECURITY DEFINER function, which developers (and approvers, admins: members of
-- the developer role) may call and readers may not. It records session_user (the role that
-- logged in) as updated_by and in the audit log, so the author cannot be forged. Installed by
-- the superuser's connect (indb.governance.card.install_server), search_path pinned, EXECUTE
-- revoked from PUBLIC and granted below.

-- name: create_document_model
-- Fields given as NULL keep their stored value; an empty string clears one.
CREATE OR REPLACE FUNCTION indb.document_model(p_model text, p_version integer, p_purpose text,
    p_intended_use text, p_limitations text, p_ethical_considerations text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    old indb.model_documentation%ROWTYPE;
BEGIN
    IF NOT pg_has_role(session_user, indb.role_name('developer'), 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied: % is not a member of %, who may document models',
            session_user, indb.role_name('developer') USING ERRCODE = '42501';
    END IF;
    -- one writer per model at a time: the row is replaced, not merged by two at once
    PERFORM 1 FROM indb.models WHERE name = p_model FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model % does not exist', p_model USING ERRCODE = 'P0002';
    END IF;
    IF p_version IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM indb.model_versions WHERE model = p_model AND version = p_version) THEN
        RAISE EXCEPTION 'model % version % does not exist', p_model, p_version USING ERRCODE = 'P0002';
    END IF;
    SELECT * INTO old FROM indb.model_documentation
    WHERE model = p_model AND version IS NOT DISTINCT FROM p_version;
    DELETE FROM indb.model_documentation WHERE model = p_model AND version IS NOT DISTINCT FROM p_version;
    INSERT INTO indb.model_documentation
        (model, version, purpose, intended_use, limitations, ethical_considerations, updated_by)
    VALUES (p_model, p_version,
            nullif(coalesce(p_purpose, old.purpose), ''),
            nullif(coalesce(p_intended_use, old.intended_use), ''),
            nullif(coalesce(p_limitations, old.limitations), ''),
            nullif(coalesce(p_ethical_considerations, old.ethical_considerations), ''),
            session_user);
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, 'document_model',
            CASE WHEN p_version IS NULL THEN p_model ELSE format('%s@%s', p_model, p_version) END,
            json_strip_nulls(json_build_object('purpose', p_purpose, 'intended_use', p_intended_use,
                'limitations', p_limitations, 'ethical_considerations', p_ethical_considerations)));
END
$indb$;

-- name: revoke_document_model
-- Nobody calls it by default (PostgreSQL makes functions executable by PUBLIC).
REVOKE ALL ON FUNCTION indb.document_model(text, integer, text, text, text, text) FROM PUBLIC;

-- name: grant_document_model
-- Developers (and approvers, admins: members of it) document models; readers only read the card.
GRANT EXECUTE ON FUNCTION indb.document_model(text, integer, text, text, text, text) TO {developer};

-- name: installed_model_card
SELECT pg_catalog.obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc AS p
WHERE p.pronamespace = 'indb'::regnamespace AND p.proname = 'document_model';

-- name: comment_document_model
COMMENT ON FUNCTION indb.document_model(text, integer, text, text, text, text) IS {comment};

-- name: document_model
SELECT indb.document_model($model, $version, $purpose, $intended_use, $limitations, $ethical_considerations);
