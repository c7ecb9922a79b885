//! The landlockconfig document: the wire structs the reader deserialises and the writer
//! serialises. Each `Deserialize` checks its value as it is read, so that a mistake is
//! reported at its own position.

use super::{group_names, AbiGroup, GroupedRight};
use crate::abi::Abi;
use crate::dialect::common::{
    checked_str, right_from_bits, right_from_name, KernelNames, PortSpec, Table,
};
use crate::rights::{AccessSet, FsRight, NetRight, Right, Scope};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// One entry of an access list: a fixed set, or a group to resolve against an ABI.
pub(super) enum Item<R: Right> {
    Set(AccessSet<R>),
    Group {
        group: AbiGroup,
        /// `Some` for `vN.group`, `None` for `abi.group`.
        abi: Option<Abi>,
        written: String,
    },
}

pub(super) fn parse_item<R: GroupedRight>(s: &str) -> Result<Item<R>, String> {
    if let Some((prefix, name)) = s.split_once('.') {
        let groups = group_names::<R>();
        let group = AbiGroup::by_name(name)
            .filter(|g| R::group(*g, Abi::LATEST).is_some())
            .ok_or_else(|| {
                format!(
                    "unknown {} group `{s}` (groups: {})",
                    R::KIND,
                    groups
                        .iter()
                        .map(|g| format!("abi.{g}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let abi = if prefix == "abi" {
            None
        } else {
            let n = prefix
                .strip_prefix('v')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    format!(
                        "unknown {} `{s}` (write `abi.{name}` or `vN.{name}`)",
                        R::KIND
                    )
                })?;
            if n == 0 || n > Abi::LATEST.number() {
                return Err(format!(
                    "`{s}` names ABI {n}; moat knows ABI 1 to {}",
                    Abi::LATEST
                ));
            }
            Some(Abi::from_number(n.into()))
        };
        return Ok(Item::Group {
            group,
            abi,
            written: s.to_string(),
        });
    }
    right_from_name::<R, KernelNames>(s)
        .map(Item::Set)
        .map_err(|e| {
            let groups: Vec<String> = group_names::<R>()
                .iter()
                .map(|g| format!("abi.{g}"))
                .collect();
            format!("{e}; groups: {}", groups.join(", "))
        })
}

impl<'de, R: GroupedRight> Deserialize<'de> for Item<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<R>(PhantomData<R>);
        impl<R: GroupedRight> Visitor<'_> for V<R> {
            type Value = Item<R>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a {} name, an ABI group or a number", R::KIND)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Item<R>, E> {
                parse_item::<R>(s).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Item<R>, E> {
                right_from_bits::<R>(n).map(Item::Set).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Item<R>, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("{} value {n} is negative", R::KIND)))
                    .and_then(|n| self.visit_u64(n))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A non-empty list of rights, groups and numbers, resolved once the ABI is known.
pub(super) struct Access<R: Right> {
    pub(super) fixed: AccessSet<R>,
    pub(super) groups: Vec<(AbiGroup, Option<Abi>, String)>,
}

impl<R: GroupedRight> Access<R> {
    /// The rights; `Err` carries the group written without an ABI to resolve it.
    pub(super) fn resolve(&self, abi: Option<Abi>) -> Result<AccessSet<R>, String> {
        let mut set = self.fixed;
        for (group, own, written) in &self.groups {
            let abi = own.or(abi).ok_or_else(|| written.clone())?;
            set = set.union(R::group(*group, abi).unwrap_or_default());
        }
        Ok(set)
    }
}

impl<'de, R: GroupedRight> Deserialize<'de> for Access<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<R>(PhantomData<R>);
        impl<'de, R: GroupedRight> Visitor<'de> for V<R> {
            type Value = Access<R>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of {} names, ABI groups or numbers", R::KIND)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Access<R>, A::Error> {
                let mut access = Access {
                    fixed: AccessSet::EMPTY,
                    groups: Vec::new(),
                };
                let mut count = 0usize;
                while let Some(item) = seq.next_element::<Item<R>>()? {
                    count += 1;
                    match item {
                        Item::Set(s) => access.fixed = access.fixed.union(s),
                        Item::Group {
                            group,
                            abi,
                            written,
                        } => access.groups.push((group, abi, written)),
                    }
                }
                if count == 0 {
                    return Err(de::Error::custom(format!(
                        "empty list: name at least one {}",
                        R::KIND
                    )));
                }
                Ok(access)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// A list that must hold at least one element.
pub(super) struct NonEmpty<T>(pub(super) Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = NonEmpty<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-empty list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("empty list: give at least one entry"));
                }
                Ok(NonEmpty(v))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// An ABI version as landlockconfig writes it: 1 to 2^31 - 1.
pub(super) struct AbiNumber(pub(super) Abi);

impl<'de> Deserialize<'de> for AbiNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AbiNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Landlock ABI version (an integer from 1 to 2147483647)")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<AbiNumber, E> {
                if (1..=i64::from(i32::MAX)).contains(&n) {
                    Ok(AbiNumber(Abi::from_number(n)))
                } else {
                    Err(E::custom(format!(
                        "ABI version {n} is outside 1..=2147483647"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<AbiNumber, E> {
                match i64::try_from(n) {
                    Ok(n) => self.visit_i64(n),
                    Err(_) => Err(E::custom(format!(
                        "ABI version {n} is outside 1..=2147483647"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks a variable name: an ASCII letter, then ASCII letters, digits or `_`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Err("empty variable name".to_string()),
        Some(c) if !c.is_ascii_alphabetic() => Err(format!(
            "variable name `{name}` must start with an ASCII letter"
        )),
        Some(_) if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') => Err(format!(
            "variable name `{name}` may hold only ASCII letters, digits and `_`"
        )),
        Some(_) => Ok(()),
    }
}

/// A variable name.
pub(super) struct VarName(pub(super) String);

impl<'de> Deserialize<'de> for VarName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| check_name(s).map(|()| VarName(s.to_string())))
    }
}

/// A variable value: literal text, which moat must be able to carry into a path.
pub(super) struct Literal(pub(super) String);

pub(super) fn check_literal_text(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err("text contains a NUL byte".to_string());
    }
    if s.contains("${") {
        return Err(format!(
            "`{s}` holds a literal `${{`, which moat would read as a variable reference"
        ));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Literal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            check_literal_text(s).map(|()| Literal(s.to_string()))
        })
    }
}

/// A piece of a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Token {
    Text(String),
    Var(String),
}

/// A path with `${name}` references (`$$` is a literal `$`).
pub(super) struct Template(pub(super) Vec<Token>);

pub(super) fn parse_template(s: &str) -> Result<Template, String> {
    if s.is_empty() {
        return Err("empty path".to_string());
    }
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            text.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed variable reference in `{s}`"))?;
            let name = &tail[..end];
            check_name(name).map_err(|e| format!("in `{s}`: {e}"))?;
            if !text.is_empty() {
                tokens.push(Token::Text(std::mem::take(&mut text)));
            }
            tokens.push(Token::Var(name.to_string()));
            rest = &tail[end + 1..];
        } else {
            text.push('$');
            rest = after;
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    for t in &tokens {
        if let Token::Text(t) = t {
            check_literal_text(t)?;
        }
    }
    Ok(Template(tokens))
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, parse_template)
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a variable (a table with `name` and `literal`)")]
pub(super) struct Variable {
    pub(super) name: VarName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) literal: Option<NonEmpty<Literal>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a ruleset (a table of handled rights and scopes)")]
pub(super) struct RulesetRaw {
    #[serde(
        default,
        rename = "handledAccessFs",
        alias = "handled_access_fs",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) handled_access_fs: Option<Access<FsRight>>,
    #[serde(
        default,
        rename = "handledAccessNet",
        alias = "handled_access_net",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) handled_access_net: Option<Access<NetRight>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scoped: Option<Access<Scope>>,
}

/// A ruleset entry: a table that handles something.
#[derive(Deserialize)]
#[serde(try_from = "Table<RulesetRaw>")]
pub(super) struct Ruleset(pub(super) RulesetRaw);

impl TryFrom<Table<RulesetRaw>> for Ruleset {
    type Error = &'static str;
    fn try_from(Table(r): Table<RulesetRaw>) -> Result<Self, Self::Error> {
        if r.handled_access_fs.is_none() && r.handled_access_net.is_none() && r.scoped.is_none() {
            return Err("empty ruleset: give handledAccessFs, handledAccessNet or scoped");
        }
        Ok(Ruleset(r))
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a path rule (a table of allowed access and parent paths)")]
pub(super) struct PathBeneath {
    #[serde(rename = "allowedAccess", alias = "allowed_access")]
    pub(super) allowed_access: Access<FsRight>,
    pub(super) parent: NonEmpty<Template>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a port rule (a table of allowed access and ports)")]
pub(super) struct NetPort {
    #[serde(rename = "allowedAccess", alias = "allowed_access")]
    pub(super) allowed_access: Access<NetRight>,
    pub(super) port: NonEmpty<PortSpec>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a landlockconfig document (a table)")]
pub(super) struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) abi: Option<AbiNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) variable: Option<NonEmpty<Table<Variable>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ruleset: Option<NonEmpty<Ruleset>>,
    #[serde(
        default,
        rename = "pathBeneath",
        alias = "path_beneath",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) path_beneath: Option<NonEmpty<Table<PathBeneath>>>,
    #[serde(
        default,
        rename = "netPort",
        alias = "net_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) net_port: Option<NonEmpty<Table<NetPort>>>,
}

impl<R: Right> Access<R> {
    /// A fixed set of rights, as a writer states it.
    pub(super) fn fixed(set: AccessSet<R>) -> Self {
        Access {
            fixed: set,
            groups: Vec::new(),
        }
    }
}

/// Written as the kernel names of the fixed rights, then each group as it was written.
impl<R: Right> Serialize for Access<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for r in self.fixed.iter() {
            seq.serialize_element(r.name())?;
        }
        for (_, _, written) in &self.groups {
            seq.serialize_element(written)?;
        }
        seq.end()
    }
}

impl<T: Serialize> Serialize for NonEmpty<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Serialize for AbiNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0.number())
    }
}

impl Serialize for VarName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for Literal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The template as landlockconfig writes it: `$` doubled in text, `${name}` for a reference.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for t in &self.0 {
            match t {
                Token::Text(text) => f.write_str(&text.replace('$', "$$"))?,
                Token::Var(name) => write!(f, "${{{name}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Ruleset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
