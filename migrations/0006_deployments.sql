-- One model, many deployments. A model may list its deployments (JSON,
-- with their keys, as the models' api_key column holds keys; NULL: the
-- backend columns and fallback URLs are its deployments), and each usage
-- record names the deployment that served it (NULL on records from before,
-- and when no deployment was reached).
ALTER TABLE models ADD COLUMN deployments TEXT;
ALTER TABLE usage_records ADD COLUMN deployment TEXT;
