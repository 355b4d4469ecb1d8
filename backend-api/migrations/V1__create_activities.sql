-- Applied once by refinery (recorded in refinery_schema_history); IF NOT EXISTS also
-- keeps it harmless on a database where the table was created by hand.
-- Never edit an applied migration: refinery rejects a changed checksum. Add V2 instead.
CREATE TABLE IF NOT EXISTS activities (
    id         BIGSERIAL   PRIMARY KEY,
    title      TEXT        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    notes      TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The list endpoint reads newest first.
CREATE INDEX IF NOT EXISTS activities_created_at_idx ON activities (created_at DESC, id DESC);
