-- pgfiles local journal, schema version 2: running totals.
-- The cache cap check and `status` used to SUM() whole tables on every batch;
-- with hundreds of thousands of cached bodies that cost most of a core while
-- idle. Triggers keep the totals exact, in the same transaction as the change,
-- whichever process makes it.

CREATE TABLE totals (
    name   TEXT    PRIMARY KEY,
    count  INTEGER NOT NULL,
    bytes  INTEGER NOT NULL
);
INSERT INTO totals (name, count, bytes) SELECT 'data_cache', COUNT(*), COALESCE(SUM(size), 0) FROM data_cache;
INSERT INTO totals (name, count, bytes) SELECT 'pending', COUNT(*), COALESCE(SUM(size), 0) FROM pending;

CREATE TRIGGER data_cache_count_insert AFTER INSERT ON data_cache BEGIN
    UPDATE totals SET count = count + 1, bytes = bytes + NEW.size WHERE name = 'data_cache';
END;
CREATE TRIGGER data_cache_count_delete AFTER DELETE ON data_cache BEGIN
    UPDATE totals SET count = count - 1, bytes = bytes - OLD.size WHERE name = 'data_cache';
END;
CREATE TRIGGER pending_count_insert AFTER INSERT ON pending BEGIN
    UPDATE totals SET count = count + 1, bytes = bytes + NEW.size WHERE name = 'pending';
END;
CREATE TRIGGER pending_count_delete AFTER DELETE ON pending BEGIN
    UPDATE totals SET count = count - 1, bytes = bytes - OLD.size WHERE name = 'pending';
END;
