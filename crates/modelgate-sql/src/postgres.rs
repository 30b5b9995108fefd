//! PostgreSQL's dialect: the statements whose SQLite text does not carry
//! over, and [`numbered`] for those that do.
//!
//! Where SQLite relies on its single writer (a reservation and its lease
//! as two statements, `changes()`, a settlement checking for its record
//! before writing it), PostgreSQL gets one statement with data-modifying
//! CTEs: each is atomic under concurrent writers at `READ COMMITTED`,
//! because an `UPDATE` that waited on a row lock re-checks its `WHERE` on
//! the row as committed, and a second insert of a primary key waits for the
//! first and then does nothing.

use modelgate_core::domain::{Ask, Lease, Settlement};

use crate::statements::{reserve_params, settle_params};
use crate::{SqlValue, int, text};

/// A shared statement with PostgreSQL's placeholders: `?1` becomes `$1`.
/// Our statements use `?` for nothing else.
pub fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

/// PostgreSQL's reservation with its lease (see [`RESERVE`]): `$with`
/// (CTEs before it), `$gate` (conditions on the key's row) and the final
/// `$select`.
macro_rules! reserve {
    ($with:literal, $gate:literal, $select:literal) => {
        concat!(
            "WITH ",
            $with,
            "granted AS (UPDATE api_keys SET
        quota_used = CASE WHEN quota_window < $4 THEN 0 ELSE quota_used END,
        quota_window = GREATEST(quota_window, $4),
        quota_reserved = quota_reserved + CASE WHEN quota IS NULL THEN $3 ELSE LEAST($3, quota
            - CASE WHEN quota_window < $4 THEN 0 ELSE quota_used END - quota_reserved) END,
        last_reservation = CASE WHEN quota IS NULL THEN $3 ELSE LEAST($3, quota
            - CASE WHEN quota_window < $4 THEN 0 ELSE quota_used END - quota_reserved) END,
        budget_used_nanos = CASE WHEN budget_window < $7 THEN 0 ELSE budget_used_nanos END,
        budget_window = GREATEST(budget_window, $7),
        budget_reserved_nanos = budget_reserved_nanos + CASE WHEN budget_nanos IS NULL THEN $6
            ELSE LEAST($6, budget_nanos - CASE WHEN budget_window < $7 THEN 0 ELSE budget_used_nanos END
                - budget_reserved_nanos) END,
        last_money = CASE WHEN budget_nanos IS NULL THEN $6
            ELSE LEAST($6, budget_nanos - CASE WHEN budget_window < $7 THEN 0 ELSE budget_used_nanos END
                - budget_reserved_nanos) END
    WHERE id = $1",
            $gate,
            "
      AND (quota IS NULL
        OR quota - CASE WHEN quota_window < $4 THEN 0 ELSE quota_used END - quota_reserved >= $2)
      AND (budget_nanos IS NULL
        OR budget_nanos - CASE WHEN budget_window < $7 THEN 0 ELSE budget_used_nanos END
            - budget_reserved_nanos >= $5)
    RETURNING last_reservation, last_money),
    lease AS (INSERT INTO leases (request_id, key_id, model, backend, amount, created_at, expires_at, money)
        SELECT $8, $1, $9, $10, last_reservation, $11, $12, last_money FROM granted)
    ",
            $select
        )
    };
}

/// The reservation and its lease in one statement (see
/// [`crate::RESERVE`]): one row with the amounts granted, or none. With
/// [`reserve_params`].
pub const RESERVE: &str = reserve!("", "", "SELECT last_reservation, last_money FROM granted");

/// One request of a key's RPM ([`RATE_STEP`] with $13 to $16) and, only if
/// the step allowed it, [`RESERVE`] (with $1 to $12): one statement, so
/// one round trip and one commit. No row: the step refused (nothing was
/// reserved); else the TAT stepped to and the amounts granted (`NULL`:
/// the reservation was refused).
pub const STEP_AND_RESERVE: &str = reserve!(
    "stepped AS (INSERT INTO rate_limits AS r (key_id, tat)
        SELECT $13, $14::BIGINT + $15::BIGINT WHERE $15::BIGINT <= $16::BIGINT
    ON CONFLICT (key_id) DO UPDATE SET tat = GREATEST(r.tat, $14) + $15
        WHERE GREATEST(r.tat, $14) + $15 - $14 <= $16
    RETURNING tat),
    ",
    " AND EXISTS (SELECT 1 FROM stepped)",
    "SELECT s.tat, g.last_reservation, g.last_money FROM stepped s LEFT JOIN granted g ON true"
);

/// Parameters of [`RESERVE`].
pub fn lease_reserve_params(l: &Lease, ask: &Ask) -> Vec<SqlValue> {
    let mut p = reserve_params(&l.key_id, ask);
    p.extend([
        text(&l.request_id),
        text(&l.model),
        text(&l.backend),
        int(l.created_at),
        int(l.expires_at),
    ]);
    p
}

/// Settlement in one statement (see [`crate::CHARGE`]): the usage record
/// (once per request id), the charge only if the record is new, and the
/// end of the lease. With [`settle_params`].
pub const SETTLE: &str = "WITH record AS (INSERT INTO usage_records (request_id, key_id, model, backend,
        prompt_tokens, completion_tokens, status, usage_reported, stream, error, latency_ms, created_at, endpoint,
        deployment, cached_tokens, cost_nanos, arguments)
        VALUES ($10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
        ON CONFLICT (request_id) DO NOTHING RETURNING request_id),
    ended AS (DELETE FROM leases WHERE request_id = $5)
    UPDATE api_keys SET
        quota_reserved = GREATEST(quota_reserved - $2, 0),
        quota_used = CASE WHEN quota_window = $6 THEN quota_used + $3
            WHEN quota_window < $6 THEN $3 ELSE quota_used END,
        quota_window = GREATEST(quota_window, $6),
        budget_reserved_nanos = GREATEST(budget_reserved_nanos - $7, 0),
        budget_used_nanos = CASE WHEN budget_window = $9 THEN budget_used_nanos + $8
            WHEN budget_window < $9 THEN $8 ELSE budget_used_nanos END,
        budget_window = GREATEST(budget_window, $9),
        last_used_at = $4
    WHERE id = $1 AND EXISTS (SELECT 1 FROM record)";

/// Parameters of [`SETTLE`].
pub fn settlement_params(s: &Settlement) -> Vec<SqlValue> {
    let (mut charge, record) = settle_params(s);
    charge.extend(record);
    charge
}

/// Usage per UTC day (see [`crate::USAGE_BY_DAY`]), with
/// [`crate::usage_params`].
pub const USAGE_BY_DAY: &str = "SELECT to_char(to_timestamp(created_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
        key_id, model, endpoint, deployment, COUNT(*) AS requests,
        SUM(prompt_tokens)::BIGINT AS prompt_tokens, SUM(completion_tokens)::BIGINT AS completion_tokens,
        SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END)::BIGINT AS errors,
        SUM(cached_tokens)::BIGINT AS cached_tokens, SUM(COALESCE(cost_nanos, 0))::BIGINT AS cost_nanos
    FROM usage_records
    WHERE created_at >= $1 AND created_at < $2
      AND ($3::TEXT IS NULL OR key_id = $3) AND ($4::TEXT IS NULL OR model = $4)
    GROUP BY day, key_id, model, endpoint, deployment
    ORDER BY day, key_id, model, endpoint, deployment";

/// Usage records, newest first (see [`crate::USAGE_RECORDS`]), with
/// [`crate::records_params`].
pub const USAGE_RECORDS: &str =
    "SELECT request_id, key_id, model, backend, prompt_tokens, completion_tokens,
        cached_tokens, cost_nanos, status, usage_reported, stream, endpoint, deployment, error,
        latency_ms, created_at, arguments
    FROM usage_records
    WHERE created_at >= $1 AND created_at < $2
      AND ($3::TEXT IS NULL OR key_id = $3) AND ($4::TEXT IS NULL OR model = $4)
      AND ($5::TEXT IS NULL OR endpoint = $5)
    ORDER BY created_at DESC, request_id DESC
    LIMIT $6";

/// Keep a response, replacing one with its id (see
/// [`crate::PUT_RESPONSE`]).
pub const PUT_RESPONSE: &str = "INSERT INTO responses (id, key_id, model, previous_response_id, \
     input, response, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET key_id = EXCLUDED.key_id, model = EXCLUDED.model,
        previous_response_id = EXCLUDED.previous_response_id, input = EXCLUDED.input,
        response = EXCLUDED.response, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at";

/// One GCRA step (see [`crate::RATE_STEP`]).
pub const RATE_STEP: &str = "INSERT INTO rate_limits AS r (key_id, tat)
        SELECT $1, $2::BIGINT + $3::BIGINT WHERE $3::BIGINT <= $4::BIGINT
    ON CONFLICT (key_id) DO UPDATE SET tat = GREATEST(r.tat, $2) + $3
        WHERE GREATEST(r.tat, $2) + $3 - $2 <= $4
    RETURNING tat";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_statements_take_postgres_placeholders() {
        assert_eq!(
            numbered(crate::DELETE_MODEL),
            "DELETE FROM models WHERE id = $1"
        );
    }
}
