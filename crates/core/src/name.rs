//! Shared strings for the fields instances repeat.
//!
//! A fleet of a million instances names a few hundred apps, accounts, regions and zones, and
//! far fewer label sets than instances. Storing each as its own `String` made an inventory
//! take eight times its file size in memory. A [`Name`] is an immutable, reference-counted
//! string: cloning it copies a pointer, so a provider that meets the same value twice (an
//! interner, as the static inventory keeps) hands out one allocation for all of them.
//! [`Labels`] is likewise one shared, sorted slice of pairs, so identical label sets can be
//! shared whole.
//!
//! Both read like the strings and maps they replace: `Name` derefs to `str` and compares with
//! `str` and `String`; `Labels` looks keys up, iterates in key order and serialises as a JSON
//! object.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable shared string; cloning is a pointer copy.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address of the shared text: equal addresses mean equal text (the converse does
    /// not hold: two allocations can hold the same text). Lets a pass over a large fleet
    /// bucket by identity, then merge buckets by text, instead of hashing every string.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>() as usize
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::from(s))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name(Arc::from(s.as_str()))
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.to_string()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.0
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        String::deserialize(d).map(Name::from)
    }
}

/// An instance's labels: key/value pairs sorted by key, keys unique, in one shared slice.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<[(Name, Name)]>);

impl Labels {
    /// Labels from pairs in any order; a repeated key keeps its last value.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Name, Name)>) -> Labels {
        let mut pairs: Vec<(Name, Name)> = pairs.into_iter().collect();
        // A stable sort keeps equal keys in input order, so the last one is the last given.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Name, Name)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match unique.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => unique.push((k, v)),
            }
        }
        Labels(Arc::from(unique))
    }

    /// The pairs, sorted by key: the form an interner shares identical sets by.
    pub fn as_slice(&self) -> &[(Name, Name)] {
        &self.0
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Name> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &Name)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These labels with `key` set to `value`.
    pub fn with(&self, key: impl Into<Name>, value: impl Into<Name>) -> Labels {
        Labels::from_pairs(
            self.0
                .iter()
                .cloned()
                .chain(std::iter::once((key.into(), value.into()))),
        )
    }
}

impl<K: Into<Name>, V: Into<Name>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Labels {
        Labels::from_pairs(iter.into_iter().map(|(k, v)| (k.into(), v.into())))
    }
}

impl Borrow<[(Name, Name)]> for Labels {
    fn borrow(&self) -> &[(Name, Name)] {
        &self.0
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(map.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_strings() {
        let n = Name::from("web");
        assert_eq!(n, "web");
        assert_eq!(n, String::from("web"));
        assert_eq!("web", n);
        assert_eq!(n.len(), 3);
        assert_eq!(format!("{n} {n:?}"), "web \"web\"");
        let shared = n.clone();
        assert!(std::ptr::eq(n.as_str(), shared.as_str()), "a clone shares");
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"web\"");
        assert_eq!(serde_json::from_str::<Name>("\"web\"").unwrap(), n);
    }

    #[test]
    fn labels_are_sorted_unique_and_serialise_as_objects() {
        let l: Labels = [("tier", "web"), ("team", "core"), ("tier", "api")]
            .into_iter()
            .collect();
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("tier").map(Name::as_str), Some("api"), "last wins");
        assert_eq!(l.get("team").map(Name::as_str), Some("core"));
        assert_eq!(l.get("nope"), None);
        let keys: Vec<&str> = l.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["team", "tier"]);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"{"team":"core","tier":"api"}"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), l);
        assert_eq!(serde_json::to_string(&Labels::default()).unwrap(), "{}");
        let more = l.with("env", "prod");
        assert_eq!(more.len(), 3);
        assert_eq!(l.len(), 2, "with() leaves the original alone");
    }
}
