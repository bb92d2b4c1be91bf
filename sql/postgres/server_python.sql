-- indb's own Python inside the server: job actions written in Python (ingest,
-- refresh_feature_set, rebuild_training_set, materialize_latest, and those later subsystems
-- register, such as retrain) run in PL/Python, so pg_cron alone runs them and no client is
-- needed.
--
-- Where the code comes from: the superuser's client ships its own indb package (its .py and
-- .sql files, zipped) into the catalog at install, as indb.server_package() (a bytea constant,
-- commented with its fingerprint); PL/Python imports indb from that archive in memory
-- (indb.load_server_python). So the server runs exactly the indb that installed this catalog:
-- no copy in the server's site-packages to fall behind, nothing for the server's OS user to
-- read from a client's home folder, and nothing outside the catalog (which only the superuser
-- writes) that could put code into the server. What the server's Python needs besides indb
-- (pandas, pyarrow, sqlglot, onnx, scikit-learn, skl2onnx, psycopg) is installed there once
-- (.ci/install_postgres.sh). The archive's latest migration must be the catalog's: a catalog
-- upgraded by a newer indb without its code (or the other way) is refused with what to do.
--
-- Rights: indb.run_job (no SECURITY DEFINER: it commits) sets the job owner's role before it
-- calls indb.run_python_action, so an action reads and writes with its owner's privileges,
-- as a sql job does; indb.run_python_action acts only on a running run of this session
-- (indb.job_python_run checks it) and reads the action and its arguments from the catalog.

-- name: create_package_function
-- indb's code (a zip archive) as the client that installed this catalog shipped it.
CREATE OR REPLACE FUNCTION indb.server_package() RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.decode({package}, 'base64');

-- name: comment_package
-- {comment} ends with the fingerprint of the archive and of these statements.
COMMENT ON FUNCTION indb.server_package() IS {comment};

-- name: installed_package
SELECT pg_catalog.obj_description(pg_catalog.to_regprocedure('indb.server_package()'), 'pg_proc');

-- name: create_loader
-- Imports indb from indb.server_package() (once per session; again after the package changed,
-- which a session that imported the old one refuses: reconnect) and checks that the archive
-- was built for this catalog's latest migration. Returns what was loaded.
CREATE OR REPLACE FUNCTION indb.load_server_python() RETURNS text
LANGUAGE plpython3u SET search_path = pg_catalog, pg_temp AS $indb$
import sys
comment = plpy.execute("SELECT pg_catalog.obj_description(pg_catalog.to_regprocedure('indb.server_package()'), 'pg_proc') AS c")[0]["c"]
if comment is None:
    plpy.error("JobError: this database has no indb.server_package(): connect once as a superuser with indb (indb.connect(url)) to install indb's Python in the server")
fingerprint = comment.rsplit("; ", 1)[-1]
state = GD.get("indb_server")
if state is not None and state["fingerprint"] == fingerprint:
    return state["label"]
if state is not None or "indb" in sys.modules:
    where = state["label"] if state is not None else getattr(sys.modules["indb"], "__file__", "?")
    plpy.error("JobError: this session imported indb already (" + str(where) + ") and indb.server_package() changed since (" + fingerprint + "): run the job from a new session (pg_cron opens one per run)")
import importlib.abc
import importlib.util
import io
import json
import zipfile
from importlib.resources.abc import TraversableResources

archive = zipfile.ZipFile(io.BytesIO(plpy.execute("SELECT indb.server_package() AS p")[0]["p"]))
names = set(archive.namelist())
meta = json.loads(archive.read("indb-server.json"))
origin = "<indb.server_package()>/"


class Reader(TraversableResources):
    def __init__(self, path):
        self.path = path

    def files(self):
        return self.path


class Finder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """indb's modules and package data from the archive (only names under indb)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "indb" and not fullname.startswith("indb."):
            return None
        base = fullname.replace(".", "/")
        package = base + "/__init__.py" in names
        if not package and base + ".py" not in names:
            return None
        filename = base + "/__init__.py" if package else base + ".py"
        spec = importlib.util.spec_from_loader(fullname, self, origin=origin + filename, is_package=package)
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [origin + base]
        return spec

    def _file(self, fullname):
        base = fullname.replace(".", "/")
        return base + "/__init__.py" if base + "/__init__.py" in names else base + ".py"

    def get_source(self, fullname):
        return archive.read(self._file(fullname)).decode("utf-8")

    def exec_module(self, module):
        filename = self._file(module.__name__)
        code = compile(archive.read(filename), origin + filename, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_resource_reader(self, fullname):
        base = fullname.replace(".", "/")
        if base + "/__init__.py" in names:
            return Reader(zipfile.Path(archive, base + "/"))
        return None


def forget():
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "indb_server", False)]
    for name in [n for n in sys.modules if n == "indb" or n.startswith("indb.")]:
        del sys.modules[name]


finder = Finder()
finder.indb_server = True
sys.meta_path.insert(0, finder)
applied = plpy.execute("SELECT pg_catalog.max(version) AS v FROM indb.schema_migrations")[0]["v"]
if applied != meta["migration"]:
    forget()
    plpy.error("JobError: indb's Python in this server (indb " + meta["version"] + ", shipped by the client that installed the catalog, built for migration " + str(meta["migration"]) + ") does not match this database's catalog (migration " + str(applied) + "): connect once as a superuser with the indb that upgraded the catalog (indb.connect(url)), which ships its own code; `indb doctor --db URL` checks it")
try:
    import indb
    from indb.backends import plpy as server
    from indb.jobs import actions
    actions._load()
except ImportError as e:
    forget()
    missing = getattr(e, "name", None) or str(e)
    plpy.error("JobError: indb's Python actions cannot run in this server: its Python (" + sys.version.split()[0] + ", " + sys.prefix + ") has no module " + repr(missing) + ". Install indb's dependencies into the Python PL/Python uses (Debian: /usr/bin/python3 -m pip install --break-system-packages pandas pyarrow sqlglot onnx scikit-learn skl2onnx 'psycopg[binary]'; or bash .ci/install_postgres.sh), then reconnect")
if indb.__version__ != meta["version"]:
    forget()
    plpy.error("JobError: indb.server_package() says indb " + meta["version"] + " but holds indb " + indb.__version__ + ": connect once as a superuser with indb to ship it again")
label = "indb " + indb.__version__ + " (" + fingerprint + ", migration " + str(meta["migration"]) + ")"
GD["indb_server"] = {"fingerprint": fingerprint, "label": label, "server": server}
return label
$indb$;

-- name: create_run_lookup
-- The run indb.run_python_action is asked to do: a running run of this session, its job's
-- action, arguments and owner; else an error (nobody runs an action outside indb.run_job).
CREATE OR REPLACE FUNCTION indb.job_python_run(run_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $indb$
DECLARE
    found jsonb;
BEGIN
    SELECT pg_catalog.jsonb_build_object('job', x.job, 'run_id', x.id, 'action', j.action,
               'arguments', j.arguments::jsonb, 'owner', j.owner, 'scheduled_for', x.scheduled_for,
               'started_at', x.started_at)
    INTO found
    FROM indb.job_runs AS x JOIN indb.jobs AS j ON j.name = x.job
    WHERE x.id = run_id AND x.status = 'running' AND x.pid = pg_catalog.pg_backend_pid()
      AND j.action NOT IN ('run_monitor', 'retain', 'sql');
    IF found IS NULL THEN
        RAISE EXCEPTION 'JobError: run % is not a running run of a Python action in this session', run_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN found;
END
$indb$;

-- name: create_run_action
-- Runs the Python action of a running run of this session (indb.run_job calls it, as the
-- job's owner) through indb.backends.plpy; returns the action's result JSON.
CREATE OR REPLACE FUNCTION indb.run_python_action(run_id bigint) RETURNS jsonb
LANGUAGE plpython3u SET search_path = pg_catalog, pg_temp AS $indb$
import json
plpy.execute("SELECT indb.load_server_python()")
plan = plpy.prepare("SELECT indb.job_python_run($1) AS r", ["bigint"])
run = json.loads(plpy.execute(plan, [run_id])[0]["r"])
return json.dumps(GD["indb_server"]["server"].run_action(plpy, run))
$indb$;

-- name: create_retrain_procedure
-- CALL indb.retrain('loans'): the model's retraining policy now, inside the server, with the
-- caller's rights (it registers a version: a developer's or admin's work), no client and no
-- job needed; the training run's id comes back (a failed fit too: its row says why).
CREATE OR REPLACE PROCEDURE indb.retrain(model_name text, INOUT training_run bigint DEFAULT NULL)
LANGUAGE plpython3u SET search_path = pg_catalog, pg_temp AS $indb$
plpy.execute("SELECT indb.load_server_python()")
return {"training_run": GD["indb_server"]["server"].retrain(plpy, model_name)}
$indb$;

-- name: create_check_action
-- For indb.schedule: the arguments of a Python action with its defaults, or the registry's
-- error (unknown action, unknown or missing argument).
CREATE OR REPLACE FUNCTION indb.check_python_action(action text, arguments jsonb) RETURNS jsonb
LANGUAGE plpython3u SET search_path = pg_catalog, pg_temp AS $indb$
import json
plpy.execute("SELECT indb.load_server_python()")
return json.dumps(GD["indb_server"]["server"].check_action(action, json.loads(arguments)))
$indb$;

-- name: create_check_action_missing
-- Without PL/Python in this database: Python actions cannot run here, and the error says why.
CREATE OR REPLACE FUNCTION indb.check_python_action(action text, arguments jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $indb$
BEGIN
    RAISE EXCEPTION 'JobError: action % is not one of the SQL actions run_monitor, retain, sql; indb''s Python actions (ingest, refresh_feature_set, rebuild_training_set, materialize_latest, ...) run inside the server through PL/Python, which this database lacks: as a superuser, apt-get install postgresql-<major>-plpython3; CREATE EXTENSION plpython3u; then connect once with indb (see indb doctor)',
        coalesce(pg_catalog.quote_literal(action), 'NULL') USING ERRCODE = 'feature_not_supported';
END
$indb$;

-- name: revoke_public
-- Functions are executable by PUBLIC unless revoked (indb.schedule, a definer, calls this one).
REVOKE ALL ON FUNCTION indb.check_python_action(text, jsonb) FROM PUBLIC;

-- name: revoke_public_python
REVOKE ALL ON FUNCTION indb.server_package(), indb.job_python_run(bigint), indb.load_server_python(),
    indb.run_python_action(bigint) FROM PUBLIC;

-- name: revoke_public_retrain
REVOKE ALL ON PROCEDURE indb.retrain(text, bigint) FROM PUBLIC;

-- name: grant_run
-- indb.run_job runs a Python action as the job's owner, and admins define (own) jobs. Each
-- acts only on a running run of the caller's own session (indb.job_python_run checks).
GRANT EXECUTE ON FUNCTION indb.server_package(), indb.job_python_run(bigint) TO {admin};

-- name: grant_run_python
GRANT EXECUTE ON FUNCTION indb.load_server_python(), indb.run_python_action(bigint) TO {admin};

-- name: grant_retrain
-- Developers and admins retrain (it registers a version; the caller's own rights apply), and
-- load indb's Python to do it.
GRANT EXECUTE ON PROCEDURE indb.retrain(text, bigint) TO {developer}, {admin};
GRANT EXECUTE ON FUNCTION indb.server_package(), indb.load_server_python() TO {developer};
