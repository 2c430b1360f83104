//! The closed sets of names the configuration chooses from: storage backend, Vault auth
//! method, upstream provider kind. Each is an enum parsed from its configured string here, once;
//! the rest of the gateway matches on the enum, never on the string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The configured spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The accepted spellings, for error messages: `a, b or c`.
            pub fn expected() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => names.concat(),
                }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| format!("unknown {} {s:?} (expected {})", $what, Self::expected()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(de)?;
                raw.trim().parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

named_enum!(
    /// `storage.type`: where clients, codes, tokens and keys are kept.
    StorageKind, "storage type", {
        /// In-process; lost on restart, one instance only.
        Memory => "memory",
        /// Redis, shared by every instance.
        Redis => "redis",
        /// Vault / OpenBao KV v2, shared by every instance.
        Vault => "vault",
    }
);

named_enum!(
    /// `storage.vault.auth_method`.
    VaultAuth, "auth method", {
        /// A fixed token (renewed when renewable).
        Token => "token",
        /// AppRole login with a role id and secret id.
        AppRole => "approle",
    }
);

named_enum!(
    /// The key under `oauth_providers`: which kind of upstream identity provider.
    ProviderKind, "provider kind", {
        /// Google (OIDC userinfo).
        Google => "google",
        /// GitHub (OAuth 2 and its REST API).
        GitHub => "github",
        /// Okta (OIDC discovery from the domain).
        Okta => "okta",
        /// Any OAuth 2 provider with explicit URLs.
        Custom => "custom",
        /// Any OpenID provider, by discovery.
        Oidc => "oidc",
        /// The gateway's own development login page.
        Dev => "dev",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_is_expected() {
        for kind in StorageKind::ALL {
            assert_eq!(kind.as_str().parse::<StorageKind>(), Ok(*kind));
        }
        assert_eq!("approle".parse::<VaultAuth>(), Ok(VaultAuth::AppRole));
        assert_eq!(ProviderKind::GitHub.to_string(), "github");
        let err = "etcd".parse::<StorageKind>().err().unwrap_or_default();
        assert_eq!(err, "unknown storage type \"etcd\" (expected memory, redis or vault)");
        assert!(serde_json::from_value::<StorageKind>(serde_json::json!("reddis")).is_err());
    }
}
