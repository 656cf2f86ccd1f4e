-- The issuer's own database: who its visitors are, their wallet credentials, pending
-- enrolments, personal safe numbers, the cached registry facts and the audit log of
-- investigator queries. Times are Unix microseconds. Keys live in a separate file.

CREATE TABLE visitors (
	id          TEXT PRIMARY KEY,        -- random; the only visitor reference in the audit log
	subject_id  BLOB NOT NULL UNIQUE,    -- 16 random bytes, sealed in every pass
	person_id   TEXT NOT NULL UNIQUE,    -- registry person id
	name        TEXT NOT NULL,
	phone       TEXT NOT NULL,           -- 010-1234-5678
	birth_date  TEXT NOT NULL,           -- YYYY-MM-DD
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX visitors_phone ON visitors (phone);

CREATE TABLE wallet_tokens (
	hash        BLOB PRIMARY KEY,        -- SHA-256 of the bearer token
	visitor_id  TEXT NOT NULL REFERENCES visitors (id) ON DELETE CASCADE,
	created_at  INTEGER NOT NULL
);
CREATE INDEX wallet_tokens_visitor ON wallet_tokens (visitor_id);

CREATE TABLE enrolments (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	phone       TEXT NOT NULL,
	birth_date  TEXT NOT NULL,
	person_id   TEXT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL
);
CREATE INDEX enrolments_expiry ON enrolments (expires_at);

CREATE TABLE safe_numbers (
	number      TEXT PRIMARY KEY,
	visitor_id  TEXT NOT NULL REFERENCES visitors (id) ON DELETE CASCADE,
	issued_at   INTEGER NOT NULL,
	retired_at  INTEGER                  -- NULL while it is the visitor's current number
);
CREATE INDEX safe_numbers_visitor ON safe_numbers (visitor_id, issued_at);
CREATE INDEX safe_numbers_retired ON safe_numbers (retired_at);

CREATE TABLE facts (
	person_id   TEXT PRIMARY KEY,
	holder      TEXT NOT NULL,           -- kipass.Holder as JSON
	updated_at  INTEGER NOT NULL,        -- the registry record's last change
	fetched_at  INTEGER NOT NULL         -- when the issuer last got it
);
CREATE INDEX facts_fetched ON facts (fetched_at);

CREATE TABLE audit_log (
	seq         INTEGER PRIMARY KEY,
	at          INTEGER NOT NULL,
	actor       TEXT NOT NULL,
	action      TEXT NOT NULL,
	case_id     TEXT NOT NULL,
	reason      TEXT NOT NULL,
	query       TEXT NOT NULL,
	prev_hash   BLOB NOT NULL,
	hash        BLOB NOT NULL
);
