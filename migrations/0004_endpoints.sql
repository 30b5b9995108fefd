-- /v1/embeddings and /v1/responses. Each usage record says which API it
-- was (NULL on records written before this column, and on abandoned
-- requests settled from their lease); each model may say how it serves
-- the Responses API ('native' or 'bridge'; NULL: its backend's default).
ALTER TABLE usage_records ADD COLUMN endpoint TEXT;
ALTER TABLE models ADD COLUMN responses_api TEXT CHECK (responses_api IN ('native', 'bridge'));
