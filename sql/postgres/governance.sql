-- Stages and promotion requests on PostgreSQL (issue 14.1), enforced by the server: a stage
-- changes only through these SECURITY DEFINER functions, which check session_user (the role
-- that logged in, which a client cannot choose) against indb's roles and the model's policy
-- (indb.stage_policies). No role but the admin may UPDATE indb.model_versions.stage directly
-- (developers are granted UPDATE of tags and description only). Installed by the superuser's
-- connect (PostgresBackend.install_governance), search_path pinned, EXECUTE revoked from
-- PUBLIC and granted per role below.

-- name: create_parity
-- The parity check (indb.governance.parity) in the server: the bytes against their sha256 and
-- onnxruntime on the stored verification sample against the outputs recorded at registration,
-- through indb's own Python (indb.load_server_python). NULL when it passes, else why. Without
-- PL/Python in this database the check cannot run, and says so (it fails).
DO $install$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'plpython3u') THEN
        EXECUTE $create$
CREATE OR REPLACE FUNCTION indb.parity_failure(p_model text, p_version integer)
RETURNS text LANGUAGE plpython3u SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
plpy.execute("SELECT indb.load_server_python()")
from indb.backends.plpy import PlpyBackend
from indb.governance import parity
return parity.failure(PlpyBackend(plpy), p_model, p_version, compiled=False)
$indb$
$create$;
    ELSE
        EXECUTE $create$
CREATE OR REPLACE FUNCTION indb.parity_failure(p_model text, p_version integer)
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
SELECT pg_catalog.format('check parity failed: %s version %s cannot be re-verified here: the check runs onnxruntime inside the server through PL/Python, which this database lacks (CREATE EXTENSION plpython3u, then connect once with indb)', p_model, p_version)
$indb$
$create$;
    END IF;
END
$install$;

-- name: create_checks
-- The policy's checks for one version: the first that fails, as text, or NULL when all pass.
CREATE OR REPLACE FUNCTION indb.stage_check_failure(p_model text, p_version integer, p_checks jsonb)
RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    c jsonb;
    m record;
    found float8;
    found_failure text;
    metrics jsonb;
BEGIN
    SELECT v.metrics::jsonb INTO metrics FROM indb.model_versions AS v
    WHERE v.model = p_model AND v.version = p_version;
    FOR c IN SELECT * FROM jsonb_array_elements(coalesce(p_checks, '[]'::jsonb)) LOOP
        IF jsonb_typeof(c) = 'object' AND c ? 'min_metric' THEN
            FOR m IN SELECT e.key, e.value::text::float8 AS minimum FROM jsonb_each(c -> 'min_metric') AS e LOOP
                found := (metrics ->> m.key)::float8;
                IF found IS NULL OR found < m.minimum THEN
                    RETURN format('check min_metric failed: %s of %s version %s is %s, the policy needs at least %s',
                                  m.key, p_model, p_version, coalesce(found::text, 'not recorded'), m.minimum);
                END IF;
            END LOOP;
        ELSIF c = '"parity"'::jsonb THEN
            found_failure := indb.parity_failure(p_model, p_version);
            IF found_failure IS NOT NULL THEN
                RETURN found_failure;
            END IF;
        ELSIF c = '"no_open_drift_alert"'::jsonb THEN
            IF EXISTS (SELECT 1 FROM indb.alerts AS a
                       JOIN indb.monitors AS mo ON mo.name = a.monitor
                       JOIN indb.deployments AS d ON d.table_name = mo.deployment
                       WHERE a.status = 'open' AND d.model = p_model
                         AND coalesce(a.model_version, d.version) = p_version) THEN
                RETURN format('check no_open_drift_alert failed: %s version %s has open alerts on its deployments',
                              p_model, p_version);
            END IF;
        ELSE
            RETURN format('unknown check %s in the policy of %s', c, p_model);
        END IF;
    END LOOP;
    RETURN NULL;
END
$indb$;

-- name: create_request_promotion_old
-- The four-argument form of migration 019 gives way to the one below (a deployment, evidence).
DROP FUNCTION IF EXISTS indb.request_promotion(text, integer, text, text);

-- name: create_request_promotion
-- A developer (or anyone above) asks for a version to move to a stage; with a deployment (to
-- production only), also for that deployment to switch to it once approved.
CREATE OR REPLACE FUNCTION indb.request_promotion(p_model text, p_version integer, p_to_stage text,
    p_reason text DEFAULT NULL, p_deployment text DEFAULT NULL, p_evidence json DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    request bigint;
BEGIN
    IF NOT pg_has_role(session_user, indb.role_name('developer'), 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied: % is not a member of %, who may request promotions',
            session_user, indb.role_name('developer') USING ERRCODE = '42501';
    END IF;
    IF p_to_stage NOT IN ('none', 'development', 'staging', 'production', 'archived') THEN
        RAISE EXCEPTION 'unknown stage %: none, development, staging, production or archived', p_to_stage
            USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM indb.model_versions WHERE model = p_model AND version = p_version) THEN
        RAISE EXCEPTION 'model % version % does not exist', p_model, p_version USING ERRCODE = 'P0002';
    END IF;
    IF p_deployment IS NOT NULL THEN
        IF p_to_stage <> 'production' THEN
            RAISE EXCEPTION 'a request that switches deployment % is to production, not %', p_deployment, p_to_stage
                USING ERRCODE = '22023';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM indb.deployments WHERE table_name = p_deployment AND model = p_model) THEN
            RAISE EXCEPTION 'deployment of model % % does not exist', p_model, p_deployment USING ERRCODE = 'P0002';
        END IF;
    END IF;
    INSERT INTO indb.stage_requests (model, version, to_stage, reason, requested_by, deployment, evidence)
    VALUES (p_model, p_version, p_to_stage, p_reason, session_user, p_deployment, p_evidence) RETURNING id INTO request;
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, 'request promotion', format('%s@%s', p_model, p_version),
            json_build_object('request', request, 'to_stage', p_to_stage, 'reason', p_reason,
                              'deployment', p_deployment));
    RETURN request;
END
$indb$;

-- name: create_decide
-- One approver's decision; the approval that completes the policy also runs its checks and
-- changes the stage (a failing check raises: nothing is recorded, the request stays open).
CREATE OR REPLACE FUNCTION indb.decide_stage_request(p_request bigint, p_decision text, p_comment text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    r indb.stage_requests%ROWTYPE;
    needed integer := 1;
    approver_role text;
    checks jsonb;
    approved integer;
    failure text;
    pending boolean;
BEGIN
    SELECT * INTO r FROM indb.stage_requests WHERE id = p_request FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stage request % does not exist', p_request USING ERRCODE = 'P0002';
    END IF;
    IF r.status <> 'open' THEN
        RAISE EXCEPTION 'stage request % is %, not open', p_request, r.status USING ERRCODE = '55000';
    END IF;
    SELECT p.approvals, p.approver_role, p.require_checks::jsonb INTO needed, approver_role, checks
    FROM indb.stage_policies AS p WHERE p.model = r.model;
    needed := coalesce(needed, 1);
    approver_role := coalesce(approver_role, indb.role_name('approver'));
    IF NOT pg_has_role(session_user, approver_role, 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied: % is not a member of %, who approve stage changes of %',
            session_user, approver_role, r.model USING ERRCODE = '42501';
    END IF;
    IF session_user = r.requested_by THEN
        RAISE EXCEPTION 'permission denied: % requested stage request % and may not decide it', session_user, p_request
            USING ERRCODE = '42501';
    END IF;
    IF EXISTS (SELECT 1 FROM indb.stage_approvals WHERE request_id = p_request AND approver = session_user) THEN
        RAISE EXCEPTION '% has already decided stage request %', session_user, p_request USING ERRCODE = '23505';
    END IF;
    INSERT INTO indb.stage_approvals (request_id, approver, decision, comment)
    VALUES (p_request, session_user, p_decision, p_comment);
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, p_decision || ' stage request', format('%s@%s', r.model, r.version),
            json_build_object('request', p_request, 'to_stage', r.to_stage, 'comment', p_comment));
    IF p_decision = 'reject' THEN
        UPDATE indb.stage_requests SET status = 'rejected', decided_at = now() AT TIME ZONE 'UTC' WHERE id = p_request;
        UPDATE indb.promotion_requests SET status = 'rejected', decided_by = session_user,
            decided_at = now() AT TIME ZONE 'UTC'
        WHERE stage_request = p_request AND status = 'open';
        RETURN 'rejected';
    END IF;
    SELECT count(DISTINCT approver) INTO approved FROM indb.stage_approvals
    WHERE request_id = p_request AND decision = 'approve' AND approver <> r.requested_by;
    IF approved < needed THEN
        RETURN 'open';
    END IF;
    failure := indb.stage_check_failure(r.model, r.version, checks);
    IF failure IS NOT NULL THEN
        RAISE EXCEPTION '%', failure USING ERRCODE = '23514';
    END IF;
    IF r.to_stage = 'production' THEN
        UPDATE indb.model_versions SET stage = 'archived'
        WHERE model = r.model AND stage = 'production' AND version <> r.version;
    END IF;
    UPDATE indb.model_versions SET stage = r.to_stage WHERE model = r.model AND version = r.version;
    -- A request for a deployment that does not run the version yet is approved: the switch
    -- (deploy rights, not an approver's) completes it (indb.complete_stage_requests).
    pending := r.deployment IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM indb.deployments AS d
        WHERE d.table_name = r.deployment AND d.model = r.model AND d.version = r.version);
    UPDATE indb.stage_requests SET status = CASE WHEN pending THEN 'approved' ELSE 'done' END,
        decided_at = now() AT TIME ZONE 'UTC' WHERE id = p_request;
    UPDATE indb.promotion_requests SET status = 'approved', decided_by = session_user,
        decided_at = now() AT TIME ZONE 'UTC'
    WHERE stage_request = p_request AND status = 'open';
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, 'change stage', format('%s@%s', r.model, r.version),
            json_build_object('request', p_request, 'to_stage', r.to_stage, 'approvals', approved,
                              'deployment', r.deployment));
    RETURN CASE WHEN pending THEN 'approved' ELSE 'done' END;
END
$indb$;

-- name: create_complete
-- Called in every switch's transaction: approved requests whose deployment now runs their
-- version are done. It only records what indb.deployments shows, so any developer may call it.
CREATE OR REPLACE FUNCTION indb.complete_stage_requests(p_deployment text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    n integer;
BEGIN
    UPDATE indb.stage_requests AS s SET status = 'done', decided_at = now() AT TIME ZONE 'UTC'
    WHERE s.status = 'approved' AND s.deployment = p_deployment
      AND EXISTS (SELECT 1 FROM indb.deployments AS d
                  WHERE d.table_name = p_deployment AND d.model = s.model AND d.version = s.version);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$indb$;

-- name: create_approve
CREATE OR REPLACE FUNCTION indb.approve(p_request bigint, p_comment text DEFAULT NULL)
RETURNS text LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
    SELECT indb.decide_stage_request(p_request, 'approve', p_comment)
$indb$;

-- name: create_reject
CREATE OR REPLACE FUNCTION indb.reject(p_request bigint, p_comment text DEFAULT NULL)
RETURNS text LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
    SELECT indb.decide_stage_request(p_request, 'reject', p_comment)
$indb$;

-- name: create_required_stage_check
-- A deployment marked with a stage (required_stage) takes only versions in that stage, however
-- its row is written (deploy, promote, rollback, an admin's UPDATE). Checked when the version
-- or the mark changes: a deployment left on a version archived since keeps working.
CREATE OR REPLACE FUNCTION indb.check_required_stage() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    found text;
BEGIN
    IF NEW.required_stage IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.model IS DISTINCT FROM OLD.model
        OR NEW.version IS DISTINCT FROM OLD.version OR NEW.required_stage IS DISTINCT FROM OLD.required_stage) THEN
        SELECT v.stage INTO found FROM indb.model_versions AS v WHERE v.model = NEW.model AND v.version = NEW.version;
        IF found IS DISTINCT FROM NEW.required_stage THEN
            RAISE EXCEPTION 'deployment % takes only versions in stage %: % version % is in stage %',
                NEW.table_name, NEW.required_stage, NEW.model, NEW.version, coalesce(found, 'none')
                USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NEW;
END
$indb$;

-- name: create_required_stage_trigger
CREATE OR REPLACE TRIGGER deployments_required_stage BEFORE INSERT OR UPDATE ON indb.deployments
FOR EACH ROW EXECUTE FUNCTION indb.check_required_stage();

-- name: revoke_governance
-- Nobody calls these by default (PostgreSQL makes functions executable by PUBLIC).
REVOKE ALL ON FUNCTION indb.stage_check_failure(text, integer, jsonb), indb.check_required_stage(), indb.decide_stage_request(bigint, text, text),
    indb.request_promotion(text, integer, text, text, text, json), indb.approve(bigint, text), indb.reject(bigint, text),
    indb.parity_failure(text, integer), indb.complete_stage_requests(text) FROM PUBLIC;

-- name: grant_request_promotion
-- Developers (and approvers, admins: members of it) ask for stage changes.
GRANT EXECUTE ON FUNCTION indb.request_promotion(text, integer, text, text, text, json) TO {developer};

-- name: grant_complete
-- Whoever switches a deployment (its owner, a developer or above) records the requests it completes.
GRANT EXECUTE ON FUNCTION indb.complete_stage_requests(text) TO {developer};

-- name: grant_decide
-- Readers (developers, approvers, admins: members of it) may call approve/reject: the function
-- itself checks the policy's approver role, which may be a role of the DBA's besides indb's.
GRANT EXECUTE ON FUNCTION indb.approve(bigint, text), indb.reject(bigint, text) TO {reader};

-- name: comment_request_promotion
COMMENT ON FUNCTION indb.request_promotion(text, integer, text, text, text, json) IS 'Opens a stage request (indb.stage_requests) for a model version, optionally for a deployment to switch to it once approved (to production); session_user is the requester. Returns its id.';

-- name: comment_complete
COMMENT ON FUNCTION indb.complete_stage_requests(text) IS 'Marks approved stage requests of a deployment done once it runs their version (called by every switch).';

-- name: comment_parity
COMMENT ON FUNCTION indb.parity_failure(text, integer) IS 'The parity check of a stage policy: NULL when the version''s bytes match their sha256 and onnxruntime reproduces the outputs recorded with its verification sample, else why not.';

-- name: comment_approve
COMMENT ON FUNCTION indb.approve(bigint, text) IS 'Approves a stage request as session_user (a member of the policy''s approver role, never the requester); the approval that reaches the policy''s count runs its checks and changes the stage.';

-- name: comment_reject
COMMENT ON FUNCTION indb.reject(bigint, text) IS 'Rejects a stage request as session_user (a member of the policy''s approver role, never the requester).';

-- name: installed_governance
SELECT pg_catalog.obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc AS p
WHERE p.pronamespace = 'indb'::regnamespace AND p.proname = 'decide_stage_request';

-- name: comment_decide
COMMENT ON FUNCTION indb.decide_stage_request(bigint, text, text) IS {comment};

-- name: request_promotion
SELECT indb.request_promotion($model, $version, $to_stage, $reason, $deployment, CAST($evidence AS json));

-- name: complete_requests
SELECT indb.complete_stage_requests($deployment);

-- name: may_switch
-- Switching a deployment replaces the triggers and functions of its request table: its owner's
-- (members of the owning role, superusers) with CREATE on its schema, and nobody else's.
SELECT coalesce(bool_or(pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')
                        AND pg_catalog.has_schema_privilege(current_user, c.relnamespace, 'CREATE')), false)
FROM indb.deployments AS d
JOIN pg_catalog.pg_class AS c
  ON c.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I',
       coalesce(d.schema_name, pg_catalog.current_schema()), d.table_name))
WHERE d.table_name = $table;

-- name: approve
SELECT indb.approve($request, $comment);

-- name: reject
SELECT indb.reject($request, $comment);
