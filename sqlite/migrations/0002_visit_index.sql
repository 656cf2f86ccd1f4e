-- Visits by day tag and by facility are found through the visit index, a second file
-- of sorted runs (sqlite/index.go), instead of B-tree indexes on random keys, which
-- cost a page write per visit. The table is rebuilt with AUTOINCREMENT so that a
-- rowid is never reused: the index tells indexed visits from the rest by rowid.
CREATE TABLE visits_v2 (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	id            TEXT NOT NULL,
	facility_id   TEXT NOT NULL,
	device_id     TEXT NOT NULL,
	at            INTEGER NOT NULL,
	method        TEXT NOT NULL,
	issuer_key_id TEXT NOT NULL,
	token_id      BLOB,
	sref          BLOB,
	dtag          BLOB,
	decision      TEXT NOT NULL,
	basis         TEXT NOT NULL,
	contact       BLOB,
	safe_number   TEXT NOT NULL,
	received_at   INTEGER NOT NULL,
	CONSTRAINT visits_pkey UNIQUE (id)
);
INSERT INTO visits_v2 (id, facility_id, device_id, at, method, issuer_key_id, token_id, sref, dtag,
	decision, basis, contact, safe_number, received_at)
SELECT id, facility_id, device_id, at, method, issuer_key_id, token_id, sref, dtag,
	decision, basis, contact, safe_number, received_at
FROM visits ORDER BY rowid;
DROP TABLE visits;
ALTER TABLE visits_v2 RENAME TO visits;
-- Retention and the shared-token scan read a time window; visit times arrive nearly
-- in order, so this index grows at its right edge.
CREATE INDEX visits_at ON visits (at);

-- The ledger's identity: the visit index file records it, and an index file found
-- next to another ledger is rebuilt.
CREATE TABLE ledger (
	id TEXT NOT NULL
);
INSERT INTO ledger (id) VALUES (lower(hex(randomblob(16))));
