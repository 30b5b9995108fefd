//! Metric handles, kept once registered.
//!
//! Registering a handle (what `metrics::counter!` and the like do on every
//! call) builds its key with owned labels, and the Prometheus recorder
//! clones that whole key again to look it up: several times a request,
//! for a handle that never changes. Once [`keep`] was called, each label
//! set is registered once and its handle kept, found again by a hash of
//! the borrowed labels. Not before: without a recorder the macros hand out
//! no-op handles, and keeping those would lose the metrics for good. The
//! native recorder has no idle timeout, so a kept handle stays the one the
//! recorder renders.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{OnceLock, PoisonError, RwLock};

use metrics::{Counter, Gauge, Histogram, Label};

/// A metric's label names and values, in the metric's fixed order.
pub(super) type Labels<'a> = &'a [(&'static str, &'a str)];

/// Handles by the hash of their metric's name and label values; those
/// whose hashes collide share the list.
type Kept<H> = RwLock<HashMap<u64, Vec<(&'static str, Box<[Box<str>]>, H)>>>;

#[derive(Default)]
struct All {
    counters: Kept<Counter>,
    gauges: Kept<Gauge>,
    histograms: Kept<Histogram>,
}

static KEPT: OnceLock<All> = OnceLock::new();

/// Keep handles from now on; call once the recorder is installed.
pub(super) fn keep() {
    KEPT.get_or_init(All::default);
}

fn owned(labels: Labels<'_>) -> Vec<Label> {
    labels
        .iter()
        .map(|&(k, v)| Label::new(k, v.to_owned()))
        .collect()
}

/// Apply `act` to the handle of `name` with `labels`: the kept one, or one
/// registered now and kept.
fn with<H>(
    kept: &Kept<H>,
    name: &'static str,
    labels: Labels<'_>,
    register: impl FnOnce(Vec<Label>) -> H,
    act: impl FnOnce(&H),
) {
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    for (_, v) in labels {
        v.hash(&mut hasher);
    }
    let hash = hasher.finish();
    let same = |n: &str, vals: &[Box<str>]| {
        n == name && vals.len() == labels.len() && vals.iter().zip(labels).all(|(a, b)| **a == *b.1)
    };
    {
        let map = kept.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((.., h)) = map
            .get(&hash)
            .and_then(|l| l.iter().find(|(n, v, _)| same(n, v)))
        {
            return act(h);
        }
    }
    let mut map = kept.write().unwrap_or_else(PoisonError::into_inner);
    let list = map.entry(hash).or_default();
    if let Some((.., h)) = list.iter().find(|(n, v, _)| same(n, v)) {
        return act(h);
    }
    let vals = labels.iter().map(|(_, v)| Box::from(*v)).collect();
    list.push((name, vals, register(owned(labels))));
    if let Some((.., h)) = list.last() {
        act(h);
    }
}

pub(super) fn counter(name: &'static str, labels: Labels<'_>, act: impl FnOnce(&Counter)) {
    match KEPT.get() {
        Some(k) => with(
            &k.counters,
            name,
            labels,
            |l| metrics::counter!(name, l),
            act,
        ),
        None => act(&metrics::counter!(name, owned(labels))),
    }
}

pub(super) fn gauge(name: &'static str, labels: Labels<'_>, act: impl FnOnce(&Gauge)) {
    match KEPT.get() {
        Some(k) => with(&k.gauges, name, labels, |l| metrics::gauge!(name, l), act),
        None => act(&metrics::gauge!(name, owned(labels))),
    }
}

pub(super) fn histogram(name: &'static str, labels: Labels<'_>, act: impl FnOnce(&Histogram)) {
    match KEPT.get() {
        Some(k) => with(
            &k.histograms,
            name,
            labels,
            |l| metrics::histogram!(name, l),
            act,
        ),
        None => act(&metrics::histogram!(name, owned(labels))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_set_is_registered_once_and_never_mistaken_for_another() {
        let kept: Kept<(usize, usize)> = RwLock::default();
        let mut registered = 0;
        let mut get = |name: &'static str, labels: Labels<'_>| {
            let mut got = None;
            with(
                &kept,
                name,
                labels,
                |l| {
                    registered += 1;
                    (l.len(), registered)
                },
                |h| got = Some(*h),
            );
            got.unwrap()
        };
        assert_eq!(get("m", &[("a", "x"), ("b", "yz")]), (2, 1));
        assert_eq!(get("m", &[("a", "xy"), ("b", "z")]), (2, 2));
        assert_eq!(get("m", &[("a", "x"), ("b", "yz")]), (2, 1), "kept");
        assert_eq!(
            get("n", &[("a", "x"), ("b", "yz")]),
            (2, 3),
            "another metric"
        );
        assert_eq!(get("m", &[("a", "x")]), (1, 4));
        assert_eq!(get("m", &[]), (0, 5));
        let kept = kept.read().unwrap();
        assert_eq!(kept.values().map(Vec::len).sum::<usize>(), 5);
    }
}
