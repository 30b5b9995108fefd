-- Cost: a model may carry prices (JSON, USD per million tokens: input,
-- cached_input, output; deployments carry their own inside their JSON), and
-- each usage record keeps the prompt tokens served from the upstream's
-- cache and what the request cost in nano-dollars (NULL: no prices).
ALTER TABLE models ADD COLUMN prices TEXT;
ALTER TABLE usage_records ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cost_nanos INTEGER;
