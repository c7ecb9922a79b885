//! Value shapes shared by the dialects: right lists (names, groups or raw UAPI numbers),
//! ports and path entries. Their `Deserialize` impls validate as they go so that every
//! mistake is reported at its own position in the document.

use crate::ports::{PortError, PortRange};
use crate::rights::{AccessSet, FsAccess, FsGroup, NetAccess, NetRight, Right, ScopeSet};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// How a dialect resolves right names that are not kernel names (groups, aliases).
pub trait RightNames<R: Right> {
    /// A set for a non-kernel name, if the dialect knows it.
    fn extra(name: &str) -> Option<AccessSet<R>>;
    /// The names accepted besides kernel names, for error messages.
    fn extra_names() -> Vec<&'static str>;
    /// How the dialect writes `set`: each right by its kernel name, unless the dialect
    /// says otherwise.
    fn spell(set: AccessSet<R>) -> Vec<Spelled> {
        set.iter().map(|r| Spelled::Name(r.name())).collect()
    }
}

/// One item of a written list of rights: a name, or a raw UAPI number for a right the
/// dialect has no name for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Spelled {
    /// A name the dialect reads.
    Name(&'static str),
    /// The right's UAPI bit.
    Number(u64),
}

/// Kernel names only.
pub struct KernelNames;
impl<R: Right> RightNames<R> for KernelNames {
    fn extra(_: &str) -> Option<AccessSet<R>> {
        None
    }
    fn extra_names() -> Vec<&'static str> {
        Vec::new()
    }
}

/// Kernel names plus moat's intent groups (`read`, `read_exec`, `write`, ...).
pub struct WithGroups;
impl RightNames<crate::rights::FsRight> for WithGroups {
    fn extra(name: &str) -> Option<FsAccess> {
        FsGroup::by_name(name).map(FsGroup::access)
    }
    fn extra_names() -> Vec<&'static str> {
        FsGroup::ALL.iter().map(|g| g.name()).collect()
    }
}
impl RightNames<NetRight> for WithGroups {
    fn extra(name: &str) -> Option<NetAccess> {
        match crate::rights::normalise_name(name).as_str() {
            "tcp" => Some(NetAccess::of(&[NetRight::BindTcp, NetRight::ConnectTcp])),
            "udp" => Some(NetAccess::of(&[
                NetRight::BindUdp,
                NetRight::ConnectSendUdp,
            ])),
            "bind" => Some(NetAccess::of(&[NetRight::BindTcp])),
            "connect" => Some(NetAccess::of(&[NetRight::ConnectTcp])),
            "connect_udp" => Some(NetAccess::of(&[NetRight::ConnectSendUdp])),
            "all" => Some(NetAccess::all()),
            _ => None,
        }
    }
    fn extra_names() -> Vec<&'static str> {
        vec!["tcp", "udp", "bind", "connect", "connect_udp", "all"]
    }
}
impl RightNames<crate::rights::Scope> for WithGroups {
    fn extra(name: &str) -> Option<ScopeSet> {
        (crate::rights::normalise_name(name) == "all").then(ScopeSet::all)
    }
    fn extra_names() -> Vec<&'static str> {
        vec!["all"]
    }
}

/// The names of [`WithGroups`], for a list of handled rights: written `["all"]` when it
/// holds every right moat knows (handling rights a later moat adds restricts more, never
/// less). Lists that grant are written right by right, so that they grant the same rights
/// whichever moat reads them.
pub struct HandledNames;
impl<R: Right> RightNames<R> for HandledNames
where
    WithGroups: RightNames<R>,
{
    fn extra(name: &str) -> Option<AccessSet<R>> {
        <WithGroups as RightNames<R>>::extra(name)
    }
    fn extra_names() -> Vec<&'static str> {
        <WithGroups as RightNames<R>>::extra_names()
    }
    fn spell(set: AccessSet<R>) -> Vec<Spelled> {
        if set == AccessSet::all() && !set.is_empty() {
            return vec![Spelled::Name("all")];
        }
        set.iter().map(|r| Spelled::Name(r.name())).collect()
    }
}

/// Resolves one right name (kernel name, dialect extra, or a number written as text).
pub fn right_from_name<R: Right, N: RightNames<R>>(name: &str) -> Result<AccessSet<R>, String> {
    if let Some(r) = AccessSet::<R>::right_by_name(name) {
        return Ok(AccessSet::of(&[r]));
    }
    if let Some(set) = N::extra(name) {
        return Ok(set);
    }
    let trimmed = name.trim();
    let number = if let Some(hex) = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()
    } else if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        trimmed.parse().ok()
    } else {
        None
    };
    if let Some(bits) = number {
        return right_from_bits::<R>(bits);
    }
    let mut known: Vec<&str> = R::ALL.iter().map(|r| r.name()).collect();
    for extra in N::extra_names() {
        // Some groups share a kernel right's name (`execute`): list each name once.
        if !known.contains(&extra) {
            known.push(extra);
        }
    }
    Err(format!(
        "unknown {} `{name}` (known: {})",
        R::KIND,
        known.join(", ")
    ))
}

/// Checks a raw UAPI mask.
pub fn right_from_bits<R: Right>(bits: u64) -> Result<AccessSet<R>, String> {
    AccessSet::<R>::from_bits(bits).map_err(|unknown| {
        format!(
            "{} bits {unknown:#x} are unknown to moat (it knows {:#x}, up to Landlock ABI {})",
            R::KIND,
            AccessSet::<R>::all().bits(),
            crate::abi::Abi::LATEST
        )
    })
}

/// A set of rights written as one name, one number, or a list of names and numbers.
/// Written back as a list, spelled by the dialect's [`RightNames::spell`].
pub struct Rights<R: Right, N: RightNames<R>>(pub AccessSet<R>, PhantomData<N>);

impl<R: Right, N: RightNames<R>> Rights<R, N> {
    /// The set, to be written in `N`'s spelling.
    pub fn new(set: AccessSet<R>) -> Self {
        Rights(set, PhantomData)
    }
}

impl<R: Right, N: RightNames<R>> Serialize for Rights<R, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        N::spell(self.0).serialize(s)
    }
}

impl<'de, R: Right, N: RightNames<R>> Deserialize<'de> for Rights<R, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<R, N>(PhantomData<(R, N)>);
        impl<'de, R: Right, N: RightNames<R>> Visitor<'de> for V<R, N> {
            type Value = AccessSet<R>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a {} name, a number, or a list of them", R::KIND)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                right_from_name::<R, N>(s).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                right_from_bits::<R>(n).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("{} value {n} is negative", R::KIND)))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut set = AccessSet::EMPTY;
                while let Some(one) = seq.next_element::<Rights<R, N>>()? {
                    set = set.union(one.0);
                }
                Ok(set)
            }
        }
        d.deserialize_any(V::<R, N>(PhantomData))
            .map(|s| Rights(s, PhantomData))
    }
}

/// A port list entry: `8080`, `"8080"` or `"8000-8010"`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortSpec(pub PortRange);

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a range such as \"8000-8010\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortSpec, E> {
                PortRange::parse(s).map(PortSpec).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortSpec, E> {
                PortRange::port_from_int(n.into())
                    .map(|p| PortSpec(PortRange::single(p)))
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortSpec, E> {
                PortRange::port_from_int(n.into())
                    .map(|p| PortSpec(PortRange::single(p)))
                    .map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<PortSpec, E> {
                // JSON reads integers beyond 64 bits as floats; say what is wrong with
                // the number rather than calling 2^64 or 80.0 "not a whole number".
                if n.fract() != 0.0 || !n.is_finite() {
                    Err(E::custom(format!("port {n} is not a whole number")))
                } else if (0.0..=65535.0).contains(&n) {
                    Err(E::custom(format!(
                        "port {n:?} is written as a decimal number; write {n}"
                    )))
                } else if n.abs() < 1e38 {
                    Err(E::custom(PortError::OutOfRange(n as i128)))
                } else {
                    Err(E::custom(format!("port {n:e} is outside 0..=65535")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for PortSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        if r.start == r.end {
            s.serialize_u16(r.start)
        } else {
            s.serialize_str(&r.to_string())
        }
    }
}

/// A path entry: `"/usr"` or `{ path = "/lib32", optional = true }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathEntry {
    /// The path as written.
    pub path: String,
    /// Skip it when missing.
    pub optional: bool,
    /// Grant it only when it resolves beneath this path (see
    /// [`crate::model::PathRule::within`]).
    pub within: Option<String>,
}

impl<'de> Deserialize<'de> for PathEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path, or a table with `path`, `optional` and `within`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PathEntry, E> {
                check_path(s).map_err(E::custom)?;
                Ok(PathEntry {
                    path: s.to_string(),
                    optional: false,
                    within: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathEntry, A::Error> {
                let mut path: Option<String> = None;
                let mut optional = false;
                let mut within = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "path" => path = Some(map.next_value::<CheckedPath>()?.0),
                        "optional" => optional = map.next_value()?,
                        "within" => within = Some(map.next_value::<CheckedPath>()?.0),
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["path", "optional", "within"],
                            ))
                        }
                    }
                }
                let path = path.ok_or_else(|| de::Error::missing_field("path"))?;
                Ok(PathEntry {
                    path,
                    optional,
                    within,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for PathEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// The table form, for an entry that says more than its path.
        #[derive(Serialize)]
        struct Long<'a> {
            path: &'a str,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            optional: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            within: Option<&'a str>,
        }
        if !self.optional && self.within.is_none() {
            return s.serialize_str(&self.path);
        }
        Long {
            path: &self.path,
            optional: self.optional,
            within: self.within.as_deref(),
        }
        .serialize(s)
    }
}

/// Reads a string and checks it inside the deserializer's visitor, so that a refusal is
/// reported at the string itself in every format (YAML would otherwise point at the list or
/// table around it).
pub fn checked_str<'de, D, T, F>(d: D, check: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct V<T, F>(F, PhantomData<fn() -> T>);
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for V<T, F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.0)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V(check, PhantomData))
}

/// A path checked with [`check_path`].
struct CheckedPath(String);

impl<'de> Deserialize<'de> for CheckedPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| check_path(s).map(|()| CheckedPath(s.to_string())))
    }
}

/// Refuses paths that cannot name a place in a sandbox: empty, relative, or with NUL.
/// Paths starting with a `${VARIABLE}` are checked again after expansion.
pub fn check_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty path".to_string());
    }
    if p.contains('\0') {
        return Err("path contains a NUL byte".to_string());
    }
    if !crate::vars::is_anchored(p) {
        return Err(format!(
            "path `{p}` is relative; write an absolute path or start with ${{CWD}}"
        ));
    }
    Ok(())
}

/// A value that must be a table (a JSON object, a YAML mapping), read as `T`.
///
/// serde's derived `Deserialize` for a struct also accepts a sequence, read as the struct's
/// fields in order: `network = [true]` would mean `network.unrestricted = true`, and a JSON
/// document `[]` an empty policy. A sandbox must not be weakened by such input, so every
/// struct-typed value of the dialects, and each dialect's document itself, is read through
/// this wrapper: it asks the format for a map and refuses anything else, a sequence
/// included, in `T`'s own words ("invalid type: sequence, expected a table of network
/// settings"). The map is handed to `T` as it is, so keys are still tracked for the key
/// path and positions still come from the format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&expecting_of::<T>())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Table)
    }
}

impl<T: Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What `T` says it expects (its `#[serde(expecting = "...")]` text, for a derived struct),
/// so that [`Table`] refuses a wrong value with the same words `T` would. It is learnt by
/// handing `T` a deserializer that holds no value and only reports the visitor it is given.
fn expecting_of<'de, T: Deserialize<'de>>() -> String {
    /// The report: the visitor's `expecting` text.
    #[derive(Debug)]
    struct Expecting(String);
    impl fmt::Display for Expecting {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Expecting {}
    impl de::Error for Expecting {
        fn custom<M: fmt::Display>(msg: M) -> Self {
            Expecting(msg.to_string())
        }
    }
    struct Probe;
    impl<'de> Deserializer<'de> for Probe {
        type Error = Expecting;
        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Expecting> {
            Err(Expecting((&v as &dyn de::Expected).to_string()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
            enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Expecting(text)) => text,
        Ok(_) => "a table".to_string(),
    }
}

/// A value that may be one item or a list of items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(s)).map(|x| vec![x])
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Vec<T>, E> {
                T::deserialize(de::value::U64Deserializer::<E>::new(n)).map(|x| vec![x])
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Vec<T>, E> {
                T::deserialize(de::value::I64Deserializer::<E>::new(n)).map(|x| vec![x])
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|x| vec![x])
            }
        }
        d.deserialize_any(V(PhantomData)).map(OneOrMany)
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

/// Finds a byte offset in `text` by following `steps` in order: each step is a needle and
/// which occurrence of it (0 = first) to find after the previous step's position. Stops at
/// the first needle that is missing and returns where the search got to, so the result
/// always points at or before the place meant.
///
/// Used for mistakes that can only be seen once the whole document is read (an `abi.all`
/// without `abi`, an undefined variable), where the deserializer no longer knows positions.
pub fn locate(text: &str, steps: &[(&str, usize)]) -> usize {
    let mut at = 0;
    for (needle, nth) in steps {
        if needle.is_empty() {
            continue;
        }
        let mut from = at;
        let mut found = None;
        for _ in 0..=*nth {
            match text.get(from..).and_then(|rest| rest.find(needle)) {
                Some(i) => {
                    found = Some(from + i);
                    from += i + needle.len();
                }
                None => {
                    found = None;
                    break;
                }
            }
        }
        match found {
            Some(pos) => at = pos,
            None => break,
        }
    }
    at
}

/// A parse error for `key`, positioned with [`locate`].
pub fn error_near(
    doc: &super::Document<'_>,
    key: &str,
    steps: &[(&str, usize)],
    message: impl Into<String>,
) -> crate::error::PolicyError {
    let d = crate::error::Diagnostic {
        file: doc.name.to_string(),
        line: None,
        column: None,
        key: key.to_string(),
        message: message.into(),
        source_line: None,
    };
    crate::error::PolicyError::Parse(Box::new(d.at_offset(doc.text, locate(doc.text, steps))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    #[serde(expecting = "a table of flags")]
    struct Flags {
        #[serde(default)]
        a: bool,
        #[serde(default)]
        b: bool,
    }

    #[test]
    fn table_takes_the_words_of_what_it_holds() {
        assert_eq!(expecting_of::<Flags>(), "a table of flags");
        assert_eq!(expecting_of::<Table<Flags>>(), "a table of flags");
    }

    #[test]
    fn table_reads_a_table_in_every_format() {
        let want = Table(Flags { a: true, b: false });
        let j: Table<Flags> = serde_json::from_str(r#"{"a": true}"#).unwrap();
        let t: Table<Flags> = toml::from_str("a = true\n").unwrap();
        let y: Table<Flags> = serde_norway::from_str("a: true\n").unwrap();
        assert_eq!(j, want);
        assert_eq!(t, want);
        assert_eq!(y, want);
    }

    #[test]
    fn table_refuses_a_list_and_scalars() {
        // The derived struct alone reads a list as its fields in order.
        assert!(serde_json::from_str::<Flags>("[true, true]").unwrap().a);
        let e = serde_json::from_str::<Table<Flags>>("[true, true]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid type: sequence, expected a table of flags at line 1 column 0"
        );
        let e = serde_json::from_str::<Table<Flags>>("5").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid type: integer `5`, expected a table of flags"),
            "{e}"
        );
        let e = toml::from_str::<BTreeMap<String, Table<Flags>>>("x = [true]\n").unwrap_err();
        assert!(
            e.message()
                .starts_with("invalid type: sequence, expected a table of flags"),
            "{e}"
        );
        let e = serde_norway::from_str::<Table<Flags>>("- true\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid type: sequence, expected a table of flags"),
            "{e}"
        );
    }
}
