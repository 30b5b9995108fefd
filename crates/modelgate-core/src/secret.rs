//! [`Secret`]: a string that no `{:?}` prints (key hashes, upstream keys,
//! the bootstrap key's hash). Stores read and write it as the plain string;
//! code that needs the value says so with [`Secret::expose`].

use serde::{Deserialize, Serialize};

/// How a stored value names a declared upstream secret instead of holding
/// one: `env:NAME` (resolved when used, through the runtime's secrets).
pub const ENV_REF: &str = "env:";

/// A secret string; `Debug` shows only that there is one.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::from("sk-very-secret");
        assert_eq!(
            format!("{s:?} {:?}", Some(&s)),
            "Secret(..) Some(Secret(..))"
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"sk-very-secret\"");
        assert_eq!(s.expose(), "sk-very-secret");
    }
}
