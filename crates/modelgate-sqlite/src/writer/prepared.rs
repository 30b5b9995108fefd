//! The jobs of a batch share the statements they take from the
//! connection's cache: the cache finds a statement by hashing and comparing
//! its whole SQL text (over a kilobyte for the reservation), work worth
//! doing once a batch rather than once a job.

use modelgate_core::domain::Grant;
use modelgate_sql as sql;
use rusqlite::{CachedStatement, Transaction, params_from_iter};

use super::{Done, Work};
use crate::{bind, store_err};

/// The statements of the hot-path jobs, in [`Prepared::slots`]' order.
const HOT: [&str; 6] = [
    sql::RESERVE_QUIET,
    sql::GRANTED,
    sql::LEASE,
    sql::CHARGE,
    sql::RECORD,
    sql::END_LEASE,
];
const RESERVE: usize = 0;
const GRANTED: usize = 1;
const LEASE: usize = 2;
const CHARGE: usize = 3;
const RECORD: usize = 4;
const END_LEASE: usize = 5;

/// The jobs of one transaction, and the statements they have used so far
/// (back to the cache when this is dropped, before the commit).
pub(super) struct Prepared<'t> {
    tx: &'t Transaction<'t>,
    slots: [Option<CachedStatement<'t>>; HOT.len()],
}

impl<'t> Prepared<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>) -> Self {
        Self {
            tx,
            slots: Default::default(),
        }
    }

    /// The hot statement `i`, prepared (or taken from the cache) on first use.
    fn stmt(&mut self, i: usize) -> rusqlite::Result<&mut CachedStatement<'t>> {
        let s = match self.slots[i].take() {
            Some(s) => s,
            None => self.tx.prepare_cached(HOT[i])?,
        };
        Ok(self.slots[i].insert(s))
    }

    /// One job's statements inside the transaction.
    pub(super) fn apply(&mut self, work: &Work) -> Done {
        match work {
            Work::Reserve(ask, lease) => {
                let args = bind(ask);
                let changed = self
                    .stmt(RESERVE)
                    .and_then(|s| s.execute(params_from_iter(args.iter())))
                    .map_err(store_err)?;
                if changed == 0 {
                    return Ok(None);
                }
                let got = self
                    .stmt(GRANTED)
                    .and_then(|s| {
                        s.query_row(params_from_iter(args.iter().take(1)), |r| {
                            Ok(Grant {
                                tokens: r.get(0)?,
                                money: r.get(1)?,
                            })
                        })
                    })
                    .map_err(store_err)?;
                self.stmt(LEASE)
                    .and_then(|s| s.execute(params_from_iter(bind(lease).iter())))
                    .map_err(store_err)?;
                Ok(Some(got))
            }
            Work::Settle(charge, record, request_id) => {
                for (i, args) in [(CHARGE, charge), (RECORD, record)] {
                    self.stmt(i)
                        .and_then(|s| s.execute(params_from_iter(bind(args).iter())))
                        .map_err(store_err)?;
                }
                self.stmt(END_LEASE)
                    .and_then(|s| s.execute([request_id]))
                    .map_err(store_err)?;
                Ok(None)
            }
            Work::Execute(stmt, args) => {
                self.tx
                    .prepare_cached(stmt)
                    .and_then(|mut s| s.execute(params_from_iter(bind(args).iter())))
                    .map_err(store_err)?;
                Ok(None)
            }
            Work::Checkpoint => Ok(None),
        }
    }
}
