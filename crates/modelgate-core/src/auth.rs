//! API keys: generation, hashing, checks, IP allowlists.
//!
//! A key is `mg-` followed by 48 hex digits (192 random bits from the
//! runtime's secure RNG). Only its SHA-256 (hex) and a short display prefix
//! are stored; the plaintext is shown once, at creation.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{ApiKey, KeyStatus};
use crate::error::AuthError;

/// The fixed start of every key the gateway issues.
pub const KEY_PREFIX: &str = "mg-";
/// Random bytes in a key.
const KEY_RANDOM_BYTES: usize = 24;
/// Characters of the key kept for display.
const DISPLAY_LEN: usize = 10;

/// SHA-256 of `secret`, hex.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh key from `random` bytes: `(plaintext, hash, display prefix)`.
pub fn new_key(random: [u8; KEY_RANDOM_BYTES]) -> (String, String, String) {
    let plaintext = format!("{KEY_PREFIX}{}", hex::encode(random));
    let hash = hash_key(&plaintext);
    let prefix = display_prefix(&plaintext);
    (plaintext, hash, prefix)
}

/// Bytes a runtime must supply to [`new_key`].
pub const fn key_random_len() -> usize {
    KEY_RANDOM_BYTES
}

/// The first characters of a key followed by an ellipsis.
pub fn display_prefix(plaintext: &str) -> String {
    let head: String = plaintext.chars().take(DISPLAY_LEN).collect();
    format!("{head}...")
}

/// Constant-time equality of two hashes (or any two strings).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The bearer token of an `Authorization` header value, if any.
pub fn bearer(header: Option<&http::HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Check a found key against status, expiry and the caller's IP.
/// `stored` must have been looked up by `hash`; the hashes are compared
/// again in constant time so that no store's lookup can be fooled.
pub fn check_key(
    stored: &ApiKey,
    hash: &str,
    now_ms: i64,
    client_ip: Option<IpAddr>,
) -> Result<(), AuthError> {
    if !ct_eq(stored.hash.expose(), hash) {
        return Err(AuthError::Invalid);
    }
    match stored.status {
        KeyStatus::Active => {}
        KeyStatus::Disabled => return Err(AuthError::Disabled),
        KeyStatus::Revoked => return Err(AuthError::Revoked),
    }
    if stored.expires_at.is_some_and(|t| t <= now_ms) {
        return Err(AuthError::Expired);
    }
    if !ip_allowed(&stored.allowed_ips, client_ip) {
        return Err(AuthError::IpNotAllowed);
    }
    Ok(())
}

/// Whether `ip` matches any entry (an IP, a CIDR, or `*`). An empty list
/// allows everyone; a non-empty list refuses an unknown IP.
pub fn ip_allowed(allowlist: &[String], ip: Option<IpAddr>) -> bool {
    if allowlist.is_empty() || allowlist.iter().any(|e| e.trim() == "*") {
        return true;
    }
    let Some(ip) = ip.map(canonical) else {
        return false;
    };
    allowlist
        .iter()
        .any(|entry| parse_net(entry).is_some_and(|net| net.contains(&ip)))
}

/// Whether `entry` is a valid allowlist entry (for admin input checks).
pub fn valid_ip_entry(entry: &str) -> bool {
    entry.trim() == "*" || parse_net(entry).is_some()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An allowlist entry as a network: an address alone is a network of one;
/// an IPv4-mapped IPv6 address counts as the IPv4 address it maps.
fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    match (canonical(net.addr()), net) {
        (IpAddr::V4(v4), IpNet::V6(v6)) => {
            let bits = v6.prefix_len().checked_sub(96)?;
            Ipv4Net::new(v4, bits).ok().map(IpNet::V4)
        }
        _ => Some(net),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(status: KeyStatus, ips: &[&str], expires_at: Option<i64>) -> ApiKey {
        ApiKey {
            id: "key_1".into(),
            name: "t".into(),
            prefix: "mg-...".into(),
            hash: hash_key("mg-secret").into(),
            status,
            admin: false,
            rpm: None,
            tpm: None,
            model_limits: Default::default(),
            quota: None,
            quota_used: 0,
            quota_reserved: 0,
            quota_period: crate::period::Period::None,
            quota_window: 0,
            budget_nanos: None,
            budget_used_nanos: 0,
            budget_reserved_nanos: 0,
            budget_period: crate::period::Period::None,
            budget_window: 0,
            allowed_models: vec![],
            allowed_ips: ips.iter().map(|s| s.to_string()).collect(),
            allowed_tools: vec![],
            default_model: None,
            expires_at,
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
        }
    }

    #[test]
    fn generated_keys_are_long_and_hashed() {
        let (plain, hash, prefix) = new_key([7; 24]);
        assert!(plain.starts_with("mg-") && plain.len() == 3 + 48);
        assert_eq!(hash, hash_key(&plain));
        assert_eq!(hash.len(), 64);
        assert!(prefix.len() < plain.len() && plain.starts_with(prefix.trim_end_matches('.')));
    }

    #[test]
    fn status_expiry_and_ip_are_checked() {
        let h = hash_key("mg-secret");
        let ip = "10.1.2.3".parse().ok();
        assert_eq!(
            check_key(&key(KeyStatus::Active, &[], None), &h, 5, ip),
            Ok(())
        );
        assert_eq!(
            check_key(&key(KeyStatus::Active, &[], None), "ab", 5, ip),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            check_key(&key(KeyStatus::Disabled, &[], None), &h, 5, ip),
            Err(AuthError::Disabled)
        );
        assert_eq!(
            check_key(&key(KeyStatus::Revoked, &[], None), &h, 5, ip),
            Err(AuthError::Revoked)
        );
        assert_eq!(
            check_key(&key(KeyStatus::Active, &[], Some(5)), &h, 5, ip),
            Err(AuthError::Expired)
        );
        assert_eq!(
            check_key(&key(KeyStatus::Active, &[], Some(6)), &h, 5, ip),
            Ok(())
        );
        assert_eq!(
            check_key(&key(KeyStatus::Active, &["10.1.0.0/16"], None), &h, 5, ip),
            Ok(())
        );
        assert_eq!(
            check_key(&key(KeyStatus::Active, &["10.2.0.0/16"], None), &h, 5, ip),
            Err(AuthError::IpNotAllowed)
        );
    }

    #[test]
    fn allowlist_forms() {
        let v4: Option<IpAddr> = "192.168.1.20".parse().ok();
        let mapped: Option<IpAddr> = "::ffff:192.168.1.20".parse().ok();
        let list = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(ip_allowed(&list(&["192.168.1.20"]), v4));
        assert!(ip_allowed(&list(&["192.168.1.0/24"]), mapped));
        assert!(ip_allowed(&list(&["0.0.0.0/0"]), v4));
        assert!(ip_allowed(&list(&["*"]), None));
        assert!(!ip_allowed(&list(&["192.168.2.0/24"]), v4));
        assert!(!ip_allowed(&list(&["192.168.1.20"]), None));
        assert!(!ip_allowed(&list(&["garbage"]), v4));
        assert!(ip_allowed(
            &list(&["2001:db8::/32"]),
            "2001:db8::1".parse().ok()
        ));
        assert!(!valid_ip_entry("10.0.0.0/33"));
        assert!(valid_ip_entry("10.0.0.0/8"));
        // An IPv4-mapped network is the IPv4 one it maps.
        assert!(ip_allowed(&list(&["::ffff:192.168.1.0/120"]), v4));
        assert!(!ip_allowed(&list(&["::ffff:192.168.2.0/120"]), mapped));
        assert!(!valid_ip_entry("::ffff:10.0.0.0/90"));
        assert!(!valid_ip_entry("10.0.0.0/8/8"));
    }

    #[test]
    fn bearer_parsing() {
        let hv = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(Some(&hv("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(Some(&hv("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(Some(&hv("Basic abc"))), None);
        assert_eq!(bearer(Some(&hv("Bearer "))), None);
        assert_eq!(bearer(None), None);
    }
}
