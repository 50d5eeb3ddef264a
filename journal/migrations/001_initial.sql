-- pgfiles local journal, schema version 1.
-- One SQLite database per (database, prefix), in WAL mode, under PGFILES_CACHE_DIR.
-- Bodies larger than the inline threshold live as files in blobs/ next to it,
-- named by the version id they belong to.

-- Versions recorded locally and not yet in Postgres, in flush order.
CREATE TABLE pending (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- flush order; never reused
    id           TEXT    NOT NULL UNIQUE,           -- UUID given at record time; becomes pgfiles.id
    key          TEXT    NOT NULL,
    op           TEXT    NOT NULL CHECK (op IN ('put', 'delete', 'copy')),
    meta         TEXT    NOT NULL,                  -- JSON; Postgres assigns "version"
    body         BLOB,                              -- put: body when small (inline)
    body_file    TEXT,                              -- put: file name under blobs/ when large
    size         INTEGER NOT NULL DEFAULT 0,        -- put: body length in bytes
    src_id       TEXT,                              -- copy: the source version's id, when known
    src_key      TEXT,                              -- copy: the source key, resolved at flush when src_id is NULL
    src_version  INTEGER,                           -- copy: the source version number (NULL = latest)
    grp          INTEGER NOT NULL,                  -- versions of one group reach Postgres in one transaction
    created_at   INTEGER NOT NULL,                  -- ms since the epoch
    held_reason  TEXT,                              -- set when Postgres rejected this version for good
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pending_key ON pending (key, seq);
CREATE INDEX pending_grp ON pending (grp);
CREATE INDEX pending_held ON pending (key) WHERE held_reason IS NOT NULL;

-- Bodies of versions known to be in Postgres, by version id (immutable), evicted
-- least recently used first when the cache is over PGFILES_CACHE_MAX_SIZE.
CREATE TABLE data_cache (
    id         TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL,
    body       BLOB,
    body_file  TEXT,
    last_used  INTEGER NOT NULL
);
CREATE INDEX data_cache_lru ON data_cache (last_used);

-- Latest meta of keys as last seen in Postgres; id NULL means "known absent".
-- Trusted for PGFILES_CACHE_METADATA_TTL.
CREATE TABLE meta_cache (
    key         TEXT    PRIMARY KEY,
    id          TEXT,
    meta        TEXT,
    fetched_at  INTEGER NOT NULL
);

-- Counters: cache hits and misses, versions and bytes flushed.
CREATE TABLE stats (
    name   TEXT    PRIMARY KEY,
    value  INTEGER NOT NULL
);

-- Only one process flushes a journal at a time. The holder renews its lease;
-- a lease whose holder died (pid gone on this host) or expired can be taken.
CREATE TABLE flush_lease (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    holder      TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- What this journal belongs to (database identity without password, prefix).
CREATE TABLE info (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
