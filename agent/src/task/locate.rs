//! Finding the line of a key path in YAML text.
//!
//! [`serde_yaml_ng::Value`] keeps no positions, and guessing lines by scanning
//! the text breaks on flow mappings, quoting and comments. But serde_yaml_ng
//! does attach the parser's position to any error raised while deserialising a
//! node. So to find `sampling.top_p` we deserialise the text once more with a
//! visitor that skips everything except that path and raises a sentinel error
//! when it reaches the key: the error's location is the key's exact position.
//! This runs only after a problem was found, so the second parse costs nothing
//! on the happy path.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::check::{Seg, child, item, render_path};

/// The 1-based line (within `yaml`) of `path`, or of its longest prefix that
/// exists. For a path ending in a key this is the line of the key itself
/// (`top_p:`), for one ending in a list index the line of the item.
pub(crate) fn line_of(yaml: &str, path: &[Seg]) -> Option<usize> {
    (0..=path.len())
        .rev()
        .find_map(|len| locate(yaml, &path[..len]))
}

/// Marks our own error, so a genuine parse error is never mistaken for a hit.
const FOUND: &str = "\u{1}located\u{1}";

fn locate(yaml: &str, path: &[Seg]) -> Option<usize> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(yaml);
    match (Seek { path }).deserialize(deserializer) {
        Err(error) if error.to_string().contains(FOUND) => error.location().map(|l| l.line()),
        _ => None,
    }
}

/// Walks down `path`; returns `Ok(())` when it does not exist.
struct Seek<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Seek<'_> {
    /// A scalar: a hit if the path ends here, otherwise the path does not exist.
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let wanted = match first {
            Seg::Key(key) => Some(key.as_str()),
            Seg::Index(_) => None,
        };
        while let Some(hit) = map.next_key_seed(KeySeek {
            wanted,
            here: rest.is_empty(),
        })? {
            if hit {
                map.next_value_seed(Seek { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let mut index = 0;
        loop {
            let found = if *first == Seg::Index(index) {
                seq.next_element_seed(Seek { path: rest })?
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if found.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
}

/// Reads one mapping key: `Ok(true)` if it is the wanted one. When the path
/// ends at this key (`here`), a match raises the sentinel instead so the error
/// carries the key's own position.
struct KeySeek<'k> {
    wanted: Option<&'k str>,
    here: bool,
}

impl KeySeek<'_> {
    fn check<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match self.wanted {
            Some(wanted) if wanted == key && self.here => Err(E::custom(FOUND)),
            Some(wanted) => Ok(wanted == key),
            None => Ok(false),
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeySeek<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeek<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        self.check(key)
    }
    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.check(&key.to_string())
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.check(&key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.check(&key.to_string())
    }
    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.check(&key.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.check("~")
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.check("~")
    }
    // Complex keys (`? [a, b]`) never match a key path; consume and skip them.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// The first key that appears twice in one mapping, as its dotted path and
/// the 1-based line of the second occurrence.
///
/// serde_yaml_ng rejects duplicates too, but reports the line where the
/// enclosing mapping starts and no usable key path.
pub(crate) fn first_duplicate(yaml: &str) -> Option<(String, usize)> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(yaml);
    let error = (Dup { path: Vec::new() }).deserialize(deserializer).err()?;
    let message = error.to_string();
    let (_, rest) = message.split_once(FOUND)?;
    let (key, _) = rest.split_once(FOUND)?;
    Some((key.to_owned(), error.location()?.line()))
}

/// Walks the whole document, checking each mapping's keys for repeats.
struct Dup {
    path: Vec<Seg>,
}

impl<'de> DeserializeSeed<'de> for Dup {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Dup {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(DupKey {
            seen: &mut seen,
            path: &self.path,
        })? {
            let path = match key {
                Some(key) => child(&self.path, &key),
                None => child(&self.path, "?"),
            };
            map.next_value_seed(Dup { path })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(Dup {
                path: item(&self.path, index),
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }
}

/// Reads one key, failing (at the key's position) if the mapping already had
/// it; `None` for a complex key (`? [a, b]`), which is not compared.
struct DupKey<'s> {
    seen: &'s mut HashSet<String>,
    path: &'s [Seg],
}

impl DupKey<'_> {
    fn check<E: de::Error>(self, key: String) -> Result<Option<String>, E> {
        if self.seen.insert(key.clone()) {
            Ok(Some(key))
        } else {
            Err(E::custom(format!(
                "{FOUND}{}{FOUND}",
                render_path(&child(self.path, &key))
            )))
        }
    }
}

impl<'de> DeserializeSeed<'de> for DupKey<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupKey<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<String>, E> {
        self.check(key.to_owned())
    }
    fn visit_bool<E: de::Error>(self, key: bool) -> Result<Option<String>, E> {
        self.check(key.to_string())
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<Option<String>, E> {
        self.check(key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<Option<String>, E> {
        self.check(key.to_string())
    }
    fn visit_f64<E: de::Error>(self, key: f64) -> Result<Option<String>, E> {
        self.check(key.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        self.check("~".to_owned())
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        self.check("~".to_owned())
    }
    // Complex keys are rare enough not to be compared; skip them.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    const YAML: &str = "\
model: m   # a comment
sampling:
  # temperature comes later
  seed: 1
  temperature: 3
thinking: {plan: 1, act: lots}
tools:
  - builtin
  - mcp:x
output:
  schema:
    type: object
";

    #[test]
    fn finds_keys_at_any_depth() {
        assert_eq!(line_of(YAML, &[key("model")]), Some(1));
        assert_eq!(
            line_of(YAML, &[key("sampling"), key("temperature")]),
            Some(5)
        );
        assert_eq!(line_of(YAML, &[key("thinking"), key("act")]), Some(6));
        assert_eq!(line_of(YAML, &[key("tools"), Seg::Index(1)]), Some(9));
        assert_eq!(
            line_of(YAML, &[key("output"), key("schema"), key("type")]),
            Some(12)
        );
    }

    #[test]
    fn falls_back_to_the_longest_existing_prefix() {
        assert_eq!(line_of(YAML, &[key("sampling"), key("top_p")]), Some(2));
        assert_eq!(line_of(YAML, &[key("tools"), Seg::Index(7)]), Some(7));
        assert_eq!(line_of(YAML, &[key("nope")]), Some(1));
    }

    #[test]
    fn finds_the_second_occurrence_of_a_duplicate_key() {
        assert_eq!(first_duplicate(YAML), None);
        let yaml = "a: 1\nb:\n  - {x: 1}\n  - x: 1\n    y: 2\n    x: 3\na: 2\n";
        assert_eq!(first_duplicate(yaml), Some(("b[1].x".to_owned(), 6)));
    }
}
