-- Periods and budgets. A key's token quota and its new money budget
-- (nano-dollars) each get a period ('none', 'daily', 'weekly', 'monthly',
-- calendar windows in UTC) and the window their counters belong to (its
-- start, epoch ms; 0 without a period): the first reservation of a later
-- window counts from zero. Leases hold money beside tokens.
ALTER TABLE api_keys ADD COLUMN quota_period TEXT NOT NULL DEFAULT 'none';
ALTER TABLE api_keys ADD COLUMN quota_window INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN budget_nanos INTEGER;
ALTER TABLE api_keys ADD COLUMN budget_used_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN budget_reserved_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'none';
ALTER TABLE api_keys ADD COLUMN budget_window INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN last_money INTEGER;
ALTER TABLE leases ADD COLUMN money INTEGER NOT NULL DEFAULT 0;
