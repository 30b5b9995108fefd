-- A tool call's arguments as their shape (names and JSON types, never
-- values); NULL for every other request.
ALTER TABLE usage_records ADD COLUMN arguments TEXT;
