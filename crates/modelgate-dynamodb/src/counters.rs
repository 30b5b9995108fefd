//! A key's two counters (token quota, money budget) as DynamoDB update
//! expressions: each with its limit, used, reserved, window and a derived
//! `*_left` attribute that reservations condition on, so that concurrent
//! reservations in one window only conflict when the counter runs out.
//! Rolling to a later window, or charging into one, sets the counter from
//! what was read and conditions on it being unchanged (one writer wins,
//! the others read again).

use crate::items::KeyItem;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::n;

/// The attribute names of one counter.
#[derive(Clone, Copy)]
pub(crate) struct Names {
    limit: &'static str,
    used: &'static str,
    reserved: &'static str,
    window: &'static str,
    left: &'static str,
}

pub(crate) const QUOTA: Names = Names {
    limit: "quota",
    used: "quota_used",
    reserved: "quota_reserved",
    window: "quota_window",
    left: "quota_left",
};

pub(crate) const BUDGET: Names = Names {
    limit: "budget_nanos",
    used: "budget_used_nanos",
    reserved: "budget_reserved_nanos",
    window: "budget_window",
    left: "budget_left",
};

/// One counter as read.
#[derive(Clone, Copy)]
pub(crate) struct Counter {
    pub(crate) names: Names,
    pub(crate) limit: Option<i64>,
    pub(crate) used: i64,
    pub(crate) reserved: i64,
    pub(crate) window: i64,
}

impl Counter {
    pub(crate) fn quota(row: &KeyItem) -> Self {
        Self {
            names: QUOTA,
            limit: row.quota,
            used: row.quota_used,
            reserved: row.quota_reserved,
            window: row.quota_window,
        }
    }

    pub(crate) fn budget(row: &KeyItem) -> Self {
        Self {
            names: BUDGET,
            limit: row.budget_nanos,
            used: row.budget_used_nanos,
            reserved: row.budget_reserved_nanos,
            window: row.budget_window,
        }
    }

    /// `limit - used - reserved`; for an unlimited counter it is kept all
    /// the same (from a limit of 0), so that setting a limit later starts
    /// right.
    pub(crate) fn left(&self) -> i64 {
        self.limit.unwrap_or(0) - self.used - self.reserved
    }

    /// What a reservation of `min..=max` in window `at` is granted, if
    /// enough is left.
    pub(crate) fn grant(&self, min: i64, max: i64, at: i64) -> Option<i64> {
        let used = modelgate_core::period::current(self.used, self.window, at);
        let Some(limit) = self.limit else {
            return Some(max);
        };
        let g = max.min(limit - used - self.reserved);
        (g >= min).then_some(g)
    }
}

/// An update expression being built, with its condition.
#[derive(Default)]
pub(crate) struct Expr {
    sets: Vec<String>,
    adds: Vec<String>,
    conditions: Vec<String>,
    pub(crate) values: Vec<(String, AttributeValue)>,
}

impl Expr {
    fn value(&mut self, name: String, v: i64) -> String {
        self.values.push((name.clone(), n(v)));
        name
    }

    /// Hold `grant` on `c` in window `at` (see the module docs).
    pub(crate) fn reserve(&mut self, c: &Counter, grant: i64, at: i64) {
        let k = c.names;
        let w0 = self.value(format!(":{}_w0", k.window), c.window);
        self.equal(k.window, &w0, c.window);
        let g = self.value(format!(":{}_g", k.reserved), grant);
        self.adds.push(format!("{} {g}", k.reserved));
        if c.window < at {
            let r0 = self.value(format!(":{}_r0", k.reserved), c.reserved);
            let w = self.value(format!(":{}_w", k.window), at);
            let left = self.value(
                format!(":{}_new", k.left),
                c.limit.unwrap_or(0) - c.reserved - grant,
            );
            let zero = self.value(format!(":{}_zero", k.used), 0);
            self.equal(k.reserved, &r0, c.reserved);
            self.sets.push(format!(
                "{} = {zero}, {} = {w}, {} = {left}",
                k.used, k.window, k.left
            ));
        } else {
            let neg = self.value(format!(":{}_neg", k.left), -grant);
            self.adds.push(format!("{} {neg}", k.left));
            if c.limit.is_some() {
                self.conditions.push(format!("{} >= {g}", k.left));
            }
        }
        self.limit_unchanged(c);
    }

    /// Release `reserved` and charge `charge` made in window `at`: into
    /// the counter's window, into a later one it starts, or (an earlier
    /// window) nowhere.
    pub(crate) fn settle(&mut self, c: &Counter, reserved: i64, charge: i64, at: i64) {
        let k = c.names;
        let w0 = self.value(format!(":{}_w0", k.window), c.window);
        self.equal(k.window, &w0, c.window);
        let release = self.value(format!(":{}_rel", k.reserved), -reserved);
        self.adds.push(format!("{} {release}", k.reserved));
        if c.window < at {
            let r0 = self.value(format!(":{}_r0", k.reserved), c.reserved);
            self.equal(k.reserved, &r0, c.reserved);
            let used = self.value(format!(":{}_set", k.used), charge);
            let w = self.value(format!(":{}_w", k.window), at);
            let left = self.value(
                format!(":{}_new", k.left),
                c.limit.unwrap_or(0) - charge - (c.reserved - reserved),
            );
            self.sets.push(format!(
                "{} = {used}, {} = {w}, {} = {left}",
                k.used, k.window, k.left
            ));
        } else {
            let charged = if c.window == at { charge } else { 0 };
            let used = self.value(format!(":{}_add", k.used), charged);
            let delta = self.value(format!(":{}_delta", k.left), reserved - charged);
            self.adds
                .push(format!("{} {used}, {} {delta}", k.used, k.left));
        }
    }

    /// `name` holds `was` (bound as `value`); a 0 may also be an
    /// attribute that items written before it existed lack.
    fn equal(&mut self, name: &str, value: &str, was: i64) {
        self.conditions.push(if was == 0 {
            format!("(attribute_not_exists({name}) OR {name} = {value})")
        } else {
            format!("{name} = {value}")
        });
    }

    fn limit_unchanged(&mut self, c: &Counter) {
        let k = c.names;
        match c.limit {
            Some(l) => {
                let v = self.value(format!(":{}_l0", k.limit), l);
                self.conditions.push(format!("{} = {v}", k.limit));
            }
            None => self.conditions.push(format!(
                "(attribute_not_exists({0}) OR attribute_type({0}, :null))",
                k.limit
            )),
        }
        if c.limit.is_none() && !self.values.iter().any(|(k, _)| k == ":null") {
            self.values
                .push((":null".into(), AttributeValue::S("NULL".into())));
        }
    }

    /// Also `SET` this.
    pub(crate) fn set(&mut self, clause: String) {
        self.sets.push(clause);
    }

    /// The update expression.
    pub(crate) fn update(&self) -> String {
        let mut parts = vec![];
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        parts.join(" ")
    }

    /// The condition, `attribute_exists(pk)` and all the counters'.
    pub(crate) fn condition(&self) -> String {
        std::iter::once("attribute_exists(pk)".to_owned())
            .chain(self.conditions.iter().cloned())
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}
