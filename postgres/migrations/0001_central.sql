-- The central service's schema: facilities, devices, the visit ledger, the audit log
-- and notices. Empty byte fields are NULL.

CREATE TABLE facilities (
	id              text PRIMARY KEY,
	name            text NOT NULL,
	business_number text NOT NULL CONSTRAINT facilities_business_number_key UNIQUE,
	category        text NOT NULL,
	region          text NOT NULL,
	address         text NOT NULL,
	phone_number    text CONSTRAINT facilities_phone_number_key UNIQUE, -- NULL: no 안심콜 number
	created_at      timestamptz NOT NULL
);

-- Enrollment codes are kept as SHA-256 hashes: a copy of the database enrols nothing.
CREATE TABLE enrollment_codes (
	code_hash   bytea PRIMARY KEY,
	facility_id text NOT NULL REFERENCES facilities (id),
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	device_id   text
);

CREATE TABLE devices (
	id          text PRIMARY KEY,
	facility_id text NOT NULL REFERENCES facilities (id),
	name        text NOT NULL,
	token_hash  bytea NOT NULL CONSTRAINT devices_token_hash_key UNIQUE,
	created_at  timestamptz NOT NULL,
	revoked_at  timestamptz
);
CREATE INDEX devices_facility ON devices (facility_id);

-- visit_ids makes a visit id unique across every day: a partitioned table cannot have
-- a unique index that leaves out its partition key. digest is SHA-256 of the visit's
-- content, so a replay is told from a conflict without reading the visit.
CREATE TABLE visit_ids (
	id     text PRIMARY KEY,
	at     timestamptz NOT NULL,
	digest bytea NOT NULL
);
CREATE INDEX visit_ids_at ON visit_ids (at);

-- The visit ledger, one partition per KST day (visits_pYYYYMMDD), created ahead of
-- the inserts that need it and dropped whole by retention. No default partition: a
-- row for a day without a partition fails, and the writer creates the day and retries.
CREATE TABLE visits (
	id            text NOT NULL,
	facility_id   text NOT NULL,
	device_id     text NOT NULL,
	at            timestamptz NOT NULL,
	method        text NOT NULL,
	issuer_key_id text NOT NULL,
	token_id      bytea,
	sref          bytea,
	dtag          bytea,
	decision      text NOT NULL,
	basis         text NOT NULL,
	contact       bytea,
	safe_number   text NOT NULL,
	received_at   timestamptz NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX visits_dtag_at ON visits (dtag, at) WHERE dtag IS NOT NULL;
CREATE INDEX visits_facility_at ON visits (facility_id, at);
-- Retention's boundary delete and the shared-token scan read a time window. No index
-- on token_id: no query looks a token up, and a random key is the dearest to insert.
CREATE INDEX visits_at ON visits (at);

-- The audit log is append-only: the triggers refuse changes through SQL, and the hash
-- chain detects changes made around them.
CREATE TABLE audit_log (
	seq       bigint PRIMARY KEY,
	at        timestamptz NOT NULL,
	actor     text NOT NULL,
	action    text NOT NULL,
	case_id   text NOT NULL,
	reason    text NOT NULL,
	query     text NOT NULL,
	prev_hash bytea NOT NULL,
	hash      bytea NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE notices (
	id         text PRIMARY KEY,
	level      text NOT NULL,
	message_ko text NOT NULL,
	message_en text NOT NULL,
	created_at timestamptz NOT NULL,
	ended_at   timestamptz
);
CREATE INDEX notices_active ON notices (created_at) WHERE ended_at IS NULL;
