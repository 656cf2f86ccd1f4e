-- The immunization registry: one row per person and one row per dose, test result,
-- release from isolation and exemption. Days are counted since 1970-01-01 (kipass.Date);
-- test times are Unix seconds; updated_at is Unix microseconds. The CHECK lists follow
-- kipass.Products, TestKinds, TestResults and Exemptions: extending one of those needs
-- a migration here.

CREATE TABLE persons (
	person_id  TEXT PRIMARY KEY,
	birth_date INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE doses (
	person_id TEXT NOT NULL REFERENCES persons (person_id) ON DELETE CASCADE,
	day       INTEGER NOT NULL,
	product   TEXT NOT NULL CHECK (product IN ('pfizer', 'moderna', 'astrazeneca', 'novavax', 'janssen')),
	PRIMARY KEY (person_id, day)
) WITHOUT ROWID;

CREATE TABLE tests (
	person_id TEXT NOT NULL REFERENCES persons (person_id) ON DELETE CASCADE,
	at        INTEGER NOT NULL,
	kind      TEXT NOT NULL CHECK (kind IN ('pcr', 'rat', 'self')),
	result    TEXT NOT NULL CHECK (result IN ('negative', 'positive')),
	PRIMARY KEY (person_id, at, kind)
) WITHOUT ROWID;

CREATE TABLE recoveries (
	person_id TEXT NOT NULL REFERENCES persons (person_id) ON DELETE CASCADE,
	day       INTEGER NOT NULL,
	PRIMARY KEY (person_id, day)
) WITHOUT ROWID;

CREATE TABLE exemptions (
	person_id TEXT NOT NULL REFERENCES persons (person_id) ON DELETE CASCADE,
	kind      TEXT NOT NULL CHECK (kind IN ('medical')),
	from_day  INTEGER,
	PRIMARY KEY (person_id, kind)
) WITHOUT ROWID;
