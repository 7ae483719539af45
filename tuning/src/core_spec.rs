//! The two config values that choose CPU cores: `shard_cores` and `raft_core`.
//!
//! Both are written the same way in the config file (TOML), in `PINLOG_*` env vars and in flags, so each
//! type parses from a string (`"all"`, `"2"`, `"0,1"`, `"[0,1]"`) and deserializes from TOML (`"all"`,
//! `2`, `[0, 1]`). A bare integer is a COUNT of shard cores; a list (brackets or a comma) names core ids.
//! Whether the cores exist is checked later against the host, in `core_plan`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// Which cores run data shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSpec {
    /// Every core this process may run on (its affinity mask).
    All,
    /// The first N cores of the affinity mask (leaving the next free one to the raft shard if possible).
    Count(usize),
    /// Exactly these core ids, one shard per id, in this order.
    List(Vec<usize>),
}

/// Which core runs the metadata raft shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftCore {
    /// Chosen by the core plan: a free core if there is one, else co-located with the last shard.
    Auto,
    /// This core id.
    Core(usize),
}

impl fmt::Display for CoreSpec {
    /// TOML syntax, so error messages read like the line the user wrote.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreSpec::All => f.write_str("\"all\""),
            CoreSpec::Count(count) => write!(f, "{count}"),
            CoreSpec::List(ids) => {
                let ids: Vec<String> = ids.iter().map(usize::to_string).collect();
                write!(f, "[{}]", ids.join(", "))
            }
        }
    }
}

impl fmt::Display for RaftCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaftCore::Auto => f.write_str("\"auto\""),
            RaftCore::Core(id) => write!(f, "{id}"),
        }
    }
}

fn parse_core_id(text: &str) -> Result<usize, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "`{}` is not a core id (a non-negative integer)",
            text.trim()
        )
    })
}

impl FromStr for CoreSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "all" {
            return Ok(CoreSpec::All);
        }
        let is_list = text.starts_with('[') || text.contains(',');
        if !is_list {
            return text.parse().map(CoreSpec::Count).map_err(|_| {
                format!("`{text}` is not \"all\", a core count like 2, or a core list like [0,1]")
            });
        }
        let inner = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(text);
        inner
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(parse_core_id)
            .collect::<Result<Vec<_>, _>>()
            .map(CoreSpec::List)
    }
}

impl FromStr for RaftCore {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "auto" => Ok(RaftCore::Auto),
            other => parse_core_id(other)
                .map(RaftCore::Core)
                .map_err(|err| format!("{err}, or \"auto\"")),
        }
    }
}

/// Converts a TOML integer to a core id or count, rejecting negatives with a clear message.
fn non_negative<E: de::Error>(value: i64) -> Result<usize, E> {
    usize::try_from(value).map_err(|_| {
        E::custom(format!(
            "{value} is negative; expected a core id or count >= 0"
        ))
    })
}

struct CoreSpecVisitor;

impl<'de> Visitor<'de> for CoreSpecVisitor {
    type Value = CoreSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"all\", a core count like 2, or a core list like [0, 1]")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<CoreSpec, E> {
        match text {
            "all" => Ok(CoreSpec::All),
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<CoreSpec, E> {
        non_negative(value).map(CoreSpec::Count)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<CoreSpec, E> {
        usize::try_from(value)
            .map(CoreSpec::Count)
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CoreSpec, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element::<i64>()? {
            ids.push(non_negative(id)?);
        }
        Ok(CoreSpec::List(ids))
    }
}

impl<'de> Deserialize<'de> for CoreSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CoreSpecVisitor)
    }
}

struct RaftCoreVisitor;

impl<'de> Visitor<'de> for RaftCoreVisitor {
    type Value = RaftCore;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"auto\" or a core id like 1")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RaftCore, E> {
        match text {
            "auto" => Ok(RaftCore::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<RaftCore, E> {
        non_negative(value).map(RaftCore::Core)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<RaftCore, E> {
        usize::try_from(value)
            .map(RaftCore::Core)
            .map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for RaftCore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RaftCoreVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        shard_cores: CoreSpec,
        raft_core: RaftCore,
    }

    fn doc(text: &str) -> Result<Doc, String> {
        toml::from_str(text).map_err(|err| err.message().to_string())
    }

    #[test]
    fn parses_strings_from_flags_and_env() {
        assert_eq!("all".parse(), Ok(CoreSpec::All));
        assert_eq!("2".parse(), Ok(CoreSpec::Count(2)));
        assert_eq!("0,1".parse(), Ok(CoreSpec::List(vec![0, 1])));
        assert_eq!("[0, 1]".parse(), Ok(CoreSpec::List(vec![0, 1])));
        assert_eq!("[3]".parse(), Ok(CoreSpec::List(vec![3])));
        assert_eq!("[]".parse(), Ok(CoreSpec::List(vec![])));
        assert!("some".parse::<CoreSpec>().unwrap_err().contains("`some`"));
        assert!("0,x"
            .parse::<CoreSpec>()
            .unwrap_err()
            .contains("`x` is not a core id"));
        assert_eq!("auto".parse(), Ok(RaftCore::Auto));
        assert_eq!("1".parse(), Ok(RaftCore::Core(1)));
        assert!("-1".parse::<RaftCore>().is_err());
    }

    #[test]
    fn deserializes_toml_forms() {
        let parsed = doc("shard_cores = \"all\"\nraft_core = \"auto\"").unwrap();
        assert_eq!(
            (parsed.shard_cores, parsed.raft_core),
            (CoreSpec::All, RaftCore::Auto)
        );
        let parsed = doc("shard_cores = 2\nraft_core = 1").unwrap();
        assert_eq!(
            (parsed.shard_cores, parsed.raft_core),
            (CoreSpec::Count(2), RaftCore::Core(1))
        );
        let parsed = doc("shard_cores = [0, 1]\nraft_core = 0").unwrap();
        assert_eq!(parsed.shard_cores, CoreSpec::List(vec![0, 1]));
    }

    #[test]
    fn rejects_bad_toml_forms_with_expectation() {
        assert!(doc("shard_cores = \"most\"\nraft_core = 1")
            .unwrap_err()
            .contains("\"all\", a core count"));
        assert!(doc("shard_cores = -2\nraft_core = 1")
            .unwrap_err()
            .contains("-2 is negative"));
        assert!(doc("shard_cores = [0, -1]\nraft_core = 1")
            .unwrap_err()
            .contains("-1 is negative"));
        assert!(doc("shard_cores = 1\nraft_core = \"x\"")
            .unwrap_err()
            .contains("\"auto\" or a core id"));
        assert!(doc("shard_cores = 1\nraft_core = true")
            .unwrap_err()
            .contains("\"auto\" or a core id"));
    }

    #[test]
    fn displays_as_toml() {
        assert_eq!(CoreSpec::List(vec![7]).to_string(), "[7]");
        assert_eq!(CoreSpec::List(vec![0, 1]).to_string(), "[0, 1]");
        assert_eq!(CoreSpec::All.to_string(), "\"all\"");
        assert_eq!(RaftCore::Core(1).to_string(), "1");
        assert_eq!(RaftCore::Auto.to_string(), "\"auto\"");
    }
}
