-- pgfiles local journal, schema version 3: NFS file handles.
-- An NFS client keeps file handles across a server restart (and across a
-- reboot of the Mac when it sleeps through it): a restarted pgfiles must serve
-- the same handle for the same file, and STALE for a removed one. A handle
-- names a row here: (export id, fileid, generation); the row says where the
-- file is (its path under the prefix). Rows are made when a name is first
-- served, moved by renames, deleted by removes. fileid is never reused
-- (AUTOINCREMENT), so a handle to a removed file can never name a new one.

CREATE TABLE nfs_handles (
    fileid       INTEGER PRIMARY KEY AUTOINCREMENT, -- the file's NFS fileid (fattr3.fileid), stable for its life
    path         TEXT    NOT NULL UNIQUE,           -- relative to the mount root, '' for the root, no leading '/'
    generation   INTEGER NOT NULL,                  -- random 31 bits: a handle must match it (not guessable from fileid)
    create_verf  BLOB                               -- CREATE EXCLUSIVE's verifier, so a retransmitted CREATE succeeds
);

-- The export id every handle of this journal carries: random, so handles are
-- not guessable from outside, and a handle of another journal is STALE here.
INSERT INTO info (name, value) VALUES ('nfs_export_id', lower(hex(randomblob(8))));
