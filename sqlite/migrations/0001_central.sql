-- The central service's schema: facilities, devices, the visit ledger, the audit log
-- and notices. Times are unix microseconds (UTC); empty byte fields are NULL.

CREATE TABLE facilities (
	id              TEXT PRIMARY KEY,
	name            TEXT NOT NULL,
	business_number TEXT NOT NULL,
	category        TEXT NOT NULL,
	region          TEXT NOT NULL,
	address         TEXT NOT NULL,
	phone_number    TEXT,            -- NULL when the facility has no 안심콜 number
	created_at      INTEGER NOT NULL,
	CONSTRAINT facilities_business_number_key UNIQUE (business_number),
	CONSTRAINT facilities_phone_number_key UNIQUE (phone_number)
);

-- Enrollment codes are kept as SHA-256 hashes: a copy of the database enrols nothing.
CREATE TABLE enrollment_codes (
	code_hash   BLOB PRIMARY KEY,
	facility_id TEXT NOT NULL REFERENCES facilities (id),
	expires_at  INTEGER NOT NULL,
	used_at     INTEGER,
	device_id   TEXT
);

CREATE TABLE devices (
	id          TEXT PRIMARY KEY,
	facility_id TEXT NOT NULL REFERENCES facilities (id),
	name        TEXT NOT NULL,
	token_hash  BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER,
	CONSTRAINT devices_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX devices_facility ON devices (facility_id);

-- The visit ledger. No foreign key to facilities: ingest validates the facility, and
-- the hot path should not pay a lookup per row.
CREATE TABLE visits (
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
CREATE INDEX visits_dtag_at ON visits (dtag, at) WHERE dtag IS NOT NULL;
CREATE INDEX visits_facility_at ON visits (facility_id, at);
-- Retention and the shared-token scan read a time window. No index on token_id: no
-- query looks a token up, and a random key costs a quarter of the insert's CPU.
CREATE INDEX visits_at ON visits (at);

-- The audit log is append-only: the triggers refuse changes through SQL, and the hash
-- chain detects changes made around them.
CREATE TABLE audit_log (
	seq       INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	case_id   TEXT NOT NULL,
	reason    TEXT NOT NULL,
	query     TEXT NOT NULL,
	prev_hash BLOB NOT NULL,
	hash      BLOB NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TABLE notices (
	id         TEXT PRIMARY KEY,
	level      TEXT NOT NULL,
	message_ko TEXT NOT NULL,
	message_en TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	ended_at   INTEGER
);
CREATE INDEX notices_active ON notices (created_at) WHERE ended_at IS NULL;
