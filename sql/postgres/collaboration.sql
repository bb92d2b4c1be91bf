-- Collaboration on PostgreSQL (issue 14.6), enforced by the server: owners and comments are
-- written only through these SECURITY DEFINER functions, which record session_user (the role
-- that logged in, which a client cannot choose) as the author or the one who added an owner.
-- No role but the admin may INSERT, UPDATE or DELETE indb.owners or indb.comments directly
-- (privileges.sql grants readers SELECT, admins writes). Installed by the superuser's connect
-- (PostgresBackend.install_collaboration), search_path pinned, EXECUTE revoked from PUBLIC and
-- granted per role below.
--
-- Who may do what:
--   comment         members of the developer role (developers, approvers, admins); readers
--                   and applications only read. Comments are never edited: a correction is a
--                   new comment (an admin may delete a row).
--   change owners   members of the admin role; an object's current owners (a member of an
--                   owning role counts); while an object has no owners, the role that created
--                   it (created_by; a job's owner). An owner is an existing role (a user is a
--                   LOGIN role), so that ownership can be checked.

-- name: create_object_exists
-- Whether the catalog has this object (indb.catalog_objects), or a not-found error naming it
-- and the names it may have meant (same first letters, or one inside the other).
CREATE OR REPLACE FUNCTION indb.collaboration_object(p_kind text, p_name text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    near text;
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('model', 'feature_set', 'monitor', 'job') THEN
        RAISE EXCEPTION 'unknown object kind %: model, feature_set, monitor or job', coalesce(p_kind, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM indb.catalog_objects AS o WHERE o.object_kind = p_kind AND o.object_name = p_name) THEN
        RETURN;
    END IF;
    SELECT string_agg(n.object_name, ', ' ORDER BY n.object_name) INTO near FROM (
        SELECT o.object_name FROM indb.catalog_objects AS o
        WHERE o.object_kind = p_kind
          AND (lower(left(o.object_name, 3)) = lower(left(p_name, 3))
               OR strpos(lower(o.object_name), lower(p_name)) > 0
               OR strpos(lower(p_name), lower(o.object_name)) > 0)
        ORDER BY o.object_name LIMIT 5) AS n;
    RAISE EXCEPTION '% % does not exist%', replace(p_kind, '_', ' '), coalesce(p_name, 'NULL'),
        coalesce('; did you mean ' || near || '?', ' (SELECT object_name FROM indb.catalog_objects)')
        USING ERRCODE = 'P0002';
END
$indb$;

-- name: create_creator
-- Who created an object, as the catalog recorded it (a feature set: its first version; a job:
-- its owner column).
CREATE OR REPLACE FUNCTION indb.collaboration_creator(p_kind text, p_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $indb$
    SELECT CASE p_kind
        WHEN 'model' THEN (SELECT m.created_by FROM indb.models AS m WHERE m.name = p_name)
        WHEN 'feature_set' THEN (SELECT f.created_by FROM indb.feature_sets AS f WHERE f.name = p_name
                                 ORDER BY f.version LIMIT 1)
        WHEN 'monitor' THEN (SELECT m.created_by FROM indb.monitors AS m WHERE m.name = p_name)
        WHEN 'job' THEN (SELECT j.owner FROM indb.jobs AS j WHERE j.name = p_name)
    END
$indb$;

-- name: create_may_change_owners
-- Admins; the object's owners (session_user, or a member of an owning role); without owners,
-- its creator. PL/pgSQL, not SQL: a SQL body is checked when created, and a managed server's
-- non-superuser install has no indb.role_name to check it against.
CREATE OR REPLACE FUNCTION indb.collaboration_may_change_owners(p_kind text, p_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    RETURN pg_catalog.pg_has_role(session_user, indb.role_name('admin'), 'MEMBER')
        OR EXISTS (SELECT 1 FROM indb.owners AS o JOIN pg_catalog.pg_roles AS r ON r.rolname = o.owner
                   WHERE o.object_kind = p_kind AND o.object_name = p_name
                     AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER'))
        OR (NOT EXISTS (SELECT 1 FROM indb.owners AS o WHERE o.object_kind = p_kind AND o.object_name = p_name)
            AND indb.collaboration_creator(p_kind, p_name) = session_user);
END
$indb$;

-- name: create_change_owner
-- Adds (p_add) or removes one owner, as session_user, audited. Adding an owner twice changes
-- nothing and returns false; removing one that is not an owner is an error.
CREATE OR REPLACE FUNCTION indb.change_owner(p_kind text, p_name text, p_owner text, p_add boolean)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    current text;
BEGIN
    PERFORM indb.collaboration_object(p_kind, p_name);
    -- one owner change of an object at a time: the permission check sees the owners it changes
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('indb.owners'), pg_catalog.hashtext(p_kind || '.' || p_name));
    IF NOT indb.collaboration_may_change_owners(p_kind, p_name) THEN
        SELECT string_agg(o.owner, ', ' ORDER BY o.owner) INTO current FROM indb.owners AS o
        WHERE o.object_kind = p_kind AND o.object_name = p_name;
        RAISE EXCEPTION 'permission denied: % may not change the owners of % % (owners: %); its owners and members of % may',
            session_user, replace(p_kind, '_', ' '), p_name,
            coalesce(current, format('none yet; its creator %s may add the first', indb.collaboration_creator(p_kind, p_name))),
            indb.role_name('admin') USING ERRCODE = '42501';
    END IF;
    IF p_add THEN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = p_owner) THEN
            RAISE EXCEPTION 'owner % is not a role of this server: owners are users (LOGIN roles) or roles', coalesce(p_owner, 'NULL')
                USING ERRCODE = '22023';
        END IF;
        INSERT INTO indb.owners (object_kind, object_name, owner, added_by)
        VALUES (p_kind, p_name, p_owner, session_user) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    ELSE
        DELETE FROM indb.owners AS o WHERE o.object_kind = p_kind AND o.object_name = p_name AND o.owner = p_owner;
        IF NOT FOUND THEN
            SELECT string_agg(o.owner, ', ' ORDER BY o.owner) INTO current FROM indb.owners AS o
            WHERE o.object_kind = p_kind AND o.object_name = p_name;
            RAISE EXCEPTION '% is not an owner of % % (owners: %)', p_owner, replace(p_kind, '_', ' '), p_name,
                coalesce(current, 'none') USING ERRCODE = 'P0002';
        END IF;
    END IF;
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, CASE WHEN p_add THEN 'add owner' ELSE 'remove owner' END, p_name,
            json_build_object('kind', p_kind, 'owner', p_owner));
    RETURN true;
END
$indb$;

-- name: create_add_owner
CREATE OR REPLACE FUNCTION indb.add_owner(p_kind text, p_name text, p_owner text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
    SELECT indb.change_owner(p_kind, p_name, p_owner, true)
$indb$;

-- name: create_remove_owner
CREATE OR REPLACE FUNCTION indb.remove_owner(p_kind text, p_name text, p_owner text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
    SELECT indb.change_owner(p_kind, p_name, p_owner, false)
$indb$;

-- name: create_add_comment
-- A comment by session_user on an object (p_version: one of a model's or feature set's
-- versions, or NULL), audited; returns its id.
CREATE OR REPLACE FUNCTION indb.add_comment(p_kind text, p_name text, p_body text, p_version integer DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    comment_id bigint;
BEGIN
    IF NOT pg_catalog.pg_has_role(session_user, indb.role_name('developer'), 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied: % is not a member of %, who may comment', session_user,
            indb.role_name('developer') USING ERRCODE = '42501';
    END IF;
    PERFORM indb.collaboration_object(p_kind, p_name);
    IF p_body IS NULL OR btrim(p_body) = '' THEN
        RAISE EXCEPTION 'a comment needs text' USING ERRCODE = '22023';
    END IF;
    IF p_version IS NOT NULL AND NOT (
        (p_kind = 'model' AND EXISTS (SELECT 1 FROM indb.model_versions AS v WHERE v.model = p_name AND v.version = p_version))
        OR (p_kind = 'feature_set' AND EXISTS (SELECT 1 FROM indb.feature_sets AS f WHERE f.name = p_name AND f.version = p_version))) THEN
        RAISE EXCEPTION '% % has no version %', replace(p_kind, '_', ' '), p_name, p_version USING ERRCODE = 'P0002';
    END IF;
    INSERT INTO indb.comments (object_kind, object_name, version, author, body)
    VALUES (p_kind, p_name, p_version, session_user, p_body) RETURNING id INTO comment_id;
    INSERT INTO indb.audit_log (actor, action, object, details)
    VALUES (session_user, 'comment', CASE WHEN p_version IS NULL THEN p_name ELSE format('%s@%s', p_name, p_version) END,
            json_build_object('kind', p_kind, 'comment', comment_id, 'version', p_version));
    RETURN comment_id;
END
$indb$;

-- name: create_forget_collaboration
-- A dropped monitor or job takes its owners and comments with it, whoever dropped it: a new
-- object of the same name starts with none. Attached below to indb.monitors and indb.jobs only;
-- the function checks that itself, since anyone may attach a trigger function to a table they
-- own, and takes the kind from the table it fires on, never from trigger arguments.
CREATE OR REPLACE FUNCTION indb.forget_collaboration() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    kind text := CASE WHEN TG_TABLE_SCHEMA = 'indb' AND TG_OP = 'DELETE' AND TG_LEVEL = 'ROW'
                      THEN CASE TG_TABLE_NAME WHEN 'monitors' THEN 'monitor' WHEN 'jobs' THEN 'job' END END;
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'indb.forget_collaboration runs only as indb''s row trigger on deleting from indb.monitors and indb.jobs'
            USING ERRCODE = '42501';
    END IF;
    DELETE FROM indb.owners AS o WHERE o.object_kind = kind AND o.object_name = OLD.name;
    DELETE FROM indb.comments AS c WHERE c.object_kind = kind AND c.object_name = OLD.name;
    RETURN NULL;
END
$indb$;

-- name: create_forget_monitor_collaboration
CREATE OR REPLACE TRIGGER forget_collaboration AFTER DELETE ON indb.monitors
FOR EACH ROW EXECUTE FUNCTION indb.forget_collaboration();

-- name: create_forget_job_collaboration
CREATE OR REPLACE TRIGGER forget_collaboration AFTER DELETE ON indb.jobs
FOR EACH ROW EXECUTE FUNCTION indb.forget_collaboration();

-- name: revoke_collaboration
-- Nobody calls these by default (PostgreSQL makes functions executable by PUBLIC).
REVOKE ALL ON FUNCTION indb.collaboration_object(text, text), indb.collaboration_creator(text, text),
    indb.collaboration_may_change_owners(text, text), indb.change_owner(text, text, text, boolean),
    indb.add_owner(text, text, text), indb.remove_owner(text, text, text),
    indb.add_comment(text, text, text, integer), indb.forget_collaboration() FROM PUBLIC;

-- name: comment_add_owner
COMMENT ON FUNCTION indb.add_owner(text, text, text) IS 'Adds an owner (an existing role) to a model, feature set, monitor or job, recorded as added by session_user; for admins, the object''s owners and, while it has none, its creator. False when already an owner.';

-- name: comment_remove_owner
COMMENT ON FUNCTION indb.remove_owner(text, text, text) IS 'Removes an owner of a model, feature set, monitor or job; for admins and the object''s owners.';

-- name: comment_add_comment
COMMENT ON FUNCTION indb.add_comment(text, text, text, integer) IS 'Adds a comment to a model (optionally one version), feature set, monitor or job, authored by session_user (members of indb''s developer role). Returns its id.';

-- name: grant_change_owner
-- Every indb role that reads (developers, approvers, admins are members of it) may try: the
-- function itself checks admins, owners and creators, who may be any role.
GRANT EXECUTE ON FUNCTION indb.add_owner(text, text, text), indb.remove_owner(text, text, text) TO {reader};

-- name: grant_add_comment
-- Developers (approvers, admins: members of it) comment; the function checks again, for
-- grants made to other roles by hand.
GRANT EXECUTE ON FUNCTION indb.add_comment(text, text, text, integer) TO {developer};

-- name: grant_describe_monitors
-- Descriptions and tags of monitors are developers' to edit, like feature sets' (the rest of
-- a monitor holds SQL that runs as its caller: admins only).
GRANT UPDATE (description, tags) ON indb.monitors TO {developer};

-- name: grant_describe_jobs
-- A job's description (its comment) and tags likewise; its schedule and action stay with
-- indb.schedule.
GRANT UPDATE (comment, tags, updated_at) ON indb.jobs TO {developer};

-- name: installed_collaboration
SELECT pg_catalog.obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc AS p
WHERE p.pronamespace = 'indb'::regnamespace AND p.proname = 'change_owner';

-- name: comment_change_owner
COMMENT ON FUNCTION indb.change_owner(text, text, text, boolean) IS {comment};

-- name: add_owner
SELECT indb.add_owner($kind, $name, $owner);

-- name: remove_owner
SELECT indb.remove_owner($kind, $name, $owner);

-- name: add_comment
SELECT indb.add_comment($kind, $name, $body, CAST($version AS INTEGER));
