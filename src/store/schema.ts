// The Postgres schema: the contract's one table plus what makes it fast and safe.
// Every statement is idempotent, so `pgfiles init` can run any number of times,
// and `pgfiles init --print` hands the same text to DBAs who apply it themselves.
//
// Why each object exists:
// - pgfiles_head: one row per key (latest id, version, deleted). Lookups of "the file"
//   read one row instead of scanning old versions; listings skip-scan its key index.
// - the BEFORE INSERT trigger assigns meta.version under the head row's lock, so two
//   writers on two machines serialise per key and can never both create version N.
//   The flusher does the same set-based under the same locks (store/apply.ts).
//   It also skips a row whose id already exists, so a retried flush batch inserts
//   nothing twice even though the trigger runs before ON CONFLICT is checked.
// - pgfiles_key_version: unique (key, version) in C collation — the hard guarantee,
//   prefix scans by byte order, and the per-key version list in one index.
// - pgfiles_change_seq + head.seq + one NOTIFY per statement: other mounts follow
//   changes (LISTEN on a direct connection, polling of seq through PgBouncer).
// - Queries against pgfiles.key say COLLATE "C" so they use the C-collated index
//   whatever the database's default collation is.

export const SCHEMA_VERSION = 1;

export const TABLE = "pgfiles";

export function schemaSql(): string {
  return `-- pgfiles schema, version ${SCHEMA_VERSION}. Safe to run more than once.
CREATE TABLE IF NOT EXISTS pgfiles (
    id    UUID    PRIMARY KEY DEFAULT gen_random_uuid(),
    key   TEXT    NOT NULL,
    meta  JSONB   NOT NULL DEFAULT '{}',
    data  BYTEA
);

-- Bodies are stored uncompressed out of line: ranged reads fetch only the TOAST
-- chunks they need (see docs/storage.md for the measurements behind this).
ALTER TABLE pgfiles ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE UNIQUE INDEX IF NOT EXISTS pgfiles_key_version
    ON pgfiles (key COLLATE "C", ((meta->>'version')::bigint));

CREATE TABLE IF NOT EXISTS pgfiles_head (
    key      TEXT COLLATE "C" PRIMARY KEY,
    id       UUID    NOT NULL,
    version  BIGINT  NOT NULL,
    deleted  BOOLEAN NOT NULL,
    seq      BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS pgfiles_head_live ON pgfiles_head (key) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS pgfiles_head_seq ON pgfiles_head (seq);

CREATE SEQUENCE IF NOT EXISTS pgfiles_change_seq;

CREATE TABLE IF NOT EXISTS pgfiles_schema (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version   INTEGER NOT NULL
);

CREATE OR REPLACE FUNCTION pgfiles_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v bigint;
BEGIN
    -- Take the key's head row lock and the next version in one statement.
    -- Concurrent writers of one key queue here until the first commits, then
    -- see its version: version numbers per key have no gap and no duplicate.
    INSERT INTO pgfiles_head AS h (key, id, version, deleted, seq)
    VALUES (NEW.key, NEW.id, 1, COALESCE((NEW.meta->>'deleted')::boolean, false), nextval('pgfiles_change_seq'))
    ON CONFLICT (key) DO UPDATE
       SET id = EXCLUDED.id, version = h.version + 1, deleted = EXCLUDED.deleted, seq = EXCLUDED.seq
    RETURNING h.version INTO v;
    IF v > 1 AND EXISTS (SELECT 1 FROM pgfiles WHERE id = NEW.id) THEN
        -- A retried batch: this version is already stored. Put the head back
        -- on the newest stored version and skip the row.
        PERFORM pgfiles_refresh_head(NEW.key);
        RETURN NULL;
    END IF;
    NEW.meta := jsonb_set(NEW.meta, '{version}', to_jsonb(v));
    RETURN NEW;
END
$fn$;

-- Points a key's head at its newest stored version, or removes it when none is left.
CREATE OR REPLACE FUNCTION pgfiles_refresh_head(k text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    SELECT id, (meta->>'version')::bigint AS version, COALESCE((meta->>'deleted')::boolean, false) AS deleted
      INTO r
      FROM pgfiles
     WHERE key COLLATE "C" = k
     ORDER BY (meta->>'version')::bigint DESC
     LIMIT 1;
    IF NOT FOUND THEN
        DELETE FROM pgfiles_head WHERE key = k;
    ELSE
        UPDATE pgfiles_head
           SET id = r.id, version = r.version, deleted = r.deleted, seq = nextval('pgfiles_change_seq')
         WHERE key = k AND (id <> r.id OR version <> r.version);
    END IF;
END
$fn$;

-- One notification per statement (not per row): listeners then read the head
-- rows whose seq is above the last one they saw.
CREATE OR REPLACE FUNCTION pgfiles_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('pgfiles_changes', '');
    RETURN NULL;
END
$fn$;

-- Hard deletes (purge, or plain SQL) keep the head consistent.
CREATE OR REPLACE FUNCTION pgfiles_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT DISTINCT o.key FROM old_rows o JOIN pgfiles_head h ON h.key = o.key AND h.id = o.id LOOP
        PERFORM pgfiles_refresh_head(k);
    END LOOP;
    PERFORM pg_notify('pgfiles_changes', '');
    RETURN NULL;
END
$fn$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'pgfiles_before_insert' AND tgrelid = 'pgfiles'::regclass) THEN
        -- The flusher assigns versions itself, set-based, under the same head
        -- locks, and says so with a transaction-local setting: the trigger then
        -- does not run at all (a plpgsql trigger that sets NEW.meta copies the
        -- whole row, 1 GB bodies included). Every other insert goes through it.
        CREATE TRIGGER pgfiles_before_insert BEFORE INSERT ON pgfiles
            FOR EACH ROW
            WHEN (current_setting('pgfiles.versions_assigned', true) IS DISTINCT FROM 'on')
            EXECUTE FUNCTION pgfiles_before_insert();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'pgfiles_after_delete' AND tgrelid = 'pgfiles'::regclass) THEN
        CREATE TRIGGER pgfiles_after_delete AFTER DELETE ON pgfiles
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION pgfiles_after_delete();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'pgfiles_notify' AND tgrelid = 'pgfiles'::regclass) THEN
        CREATE TRIGGER pgfiles_notify AFTER INSERT ON pgfiles
            FOR EACH STATEMENT EXECUTE FUNCTION pgfiles_notify();
    END IF;
END
$do$;

INSERT INTO pgfiles_schema (singleton, version) VALUES (true, ${SCHEMA_VERSION})
ON CONFLICT (singleton) DO UPDATE SET version = GREATEST(pgfiles_schema.version, EXCLUDED.version);
`;
}
