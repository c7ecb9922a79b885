//! The policy dialects moat reads and writes, and how a document is recognised.
//!
//! Every dialect parses into the one [`Policy`] model. Syntax and
//! meaning errors carry file, line, column and key.
//!
//! Each dialect is one folder: its wire structs, once, with `Deserialize` and `Serialize`
//! ([`moat`]'s `doc.rs`, [`oci`]'s and [`landlockconfig`]'s `wire.rs`), the reader that
//! turns them into a [`Policy`] (`mod.rs`), and the writer that builds them from one
//! (`write.rs`). What the writers share lives beside them: the value shapes every dialect
//! uses (`common.rs`) and the reduction of a policy to what landlockconfig and OCI can
//! say (`plain.rs`). [`crate::write`] is the dispatcher over the writers.

pub(crate) mod common;
pub mod landlockconfig;
pub mod moat;
pub mod oci;
mod plain;

use crate::error::{Diagnostic, PolicyError};
use crate::model::Policy;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Documents larger than this are refused before parsing: no real policy comes near it,
/// and it bounds the work a hostile input can cause.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// The syntax a document is written in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl Format {
    /// The format a file name's extension says, if any.
    pub fn from_extension(name: &str) -> Option<Format> {
        let ext = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// Guesses the format from content: `{` starts JSON; text that parses as TOML, or whose
    /// first line is a TOML table header or `key = value`, is TOML (so a mistake in it is
    /// reported as the TOML mistake it is); anything else is read as YAML. A document over [`MAX_DOCUMENT_BYTES`] is not parsed
    /// to find out: it is refused whatever its format.
    pub fn sniff(text: &str) -> Format {
        let first = text.trim_start().chars().next();
        if first == Some('{') {
            Format::Json
        } else if looks_like_toml(text)
            || (text.len() <= MAX_DOCUMENT_BYTES && toml::from_str::<toml::Table>(text).is_ok())
        {
            Format::Toml
        } else {
            Format::Yaml
        }
    }
}

/// Whether the first line that is neither blank nor a comment is TOML's: a table header
/// (`[filesystem]`, `[[filesystem.rule]]`) or `key = value` (YAML writes `key: value`,
/// and a YAML document does not start with a flow sequence in any policy dialect).
fn looks_like_toml(text: &str) -> bool {
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return false;
    };
    line.starts_with('[')
        || line
            .split_once('=')
            .is_some_and(|(key, _)| !key.contains(':') && !key.trim().is_empty())
}

/// The dialects moat understands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// moat's own format.
    Moat,
    /// The Landlock maintainers' landlockconfig format.
    LandlockConfig,
    /// OCI `process.landlock` as proposed in runtime-spec PR #1241.
    OciPr1241,
    /// OCI `process.landlock` as proposed in runtime-spec PR #1111.
    OciPr1111,
}

impl Dialect {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Moat => "moat",
            Dialect::LandlockConfig => "landlockconfig",
            Dialect::OciPr1241 => "OCI process.landlock (runtime-spec #1241)",
            Dialect::OciPr1111 => "OCI process.landlock (runtime-spec #1111)",
        }
    }
}

/// A policy document: its name (for messages), text and syntax.
#[derive(Clone, Copy, Debug)]
pub struct Document<'a> {
    /// File name or other label used in messages.
    pub name: &'a str,
    /// The text.
    pub text: &'a str,
    /// The syntax.
    pub format: Format,
}

impl<'a> Document<'a> {
    /// A document whose format comes from its name's extension, or from its content.
    pub fn new(name: &'a str, text: &'a str) -> Self {
        let format = Format::from_extension(name).unwrap_or_else(|| Format::sniff(text));
        Document { name, text, format }
    }

    /// A document of a known format.
    pub fn with_format(name: &'a str, text: &'a str, format: Format) -> Self {
        Document { name, text, format }
    }

    /// The document as a generic JSON value, for dialect detection.
    pub fn value(&self) -> Result<serde_json::Value, PolicyError> {
        self.deserialize::<serde_json::Value>()
            .map_err(|e| match e {
                // YAML is read into a JSON value here, which holds no integer beyond 64 bits:
                // say so without blaming JSON in a YAML document.
                PolicyError::Parse(mut d) if d.message == "JSON number out of range" => {
                    d.message = "number out of range (integers are limited to 64 bits)".to_string();
                    PolicyError::Parse(d)
                }
                e => e,
            })
    }

    /// Deserialises the document into `T`, turning any failure into a positioned
    /// [`Diagnostic`].
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PolicyError> {
        if self.text.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::parse(
                self.name,
                "",
                format!(
                    "document is {} bytes; policies are limited to {MAX_DOCUMENT_BYTES} bytes",
                    self.text.len()
                ),
            ));
        }
        let diag = |key: String, message: String| Diagnostic {
            file: self.name.to_string(),
            line: None,
            column: None,
            key,
            message,
            source_line: None,
        };
        match self.format {
            Format::Json => {
                let json_error = |key: String, e: serde_json::Error| {
                    let (line, col) = (e.line(), e.column());
                    let d = diag(key, strip_position(&e.to_string()));
                    PolicyError::Parse(Box::new(d.at_line_column(self.text, line, col)))
                };
                let mut de = serde_json::Deserializer::from_str(self.text);
                let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let key = key_of(e.path());
                    json_error(key, e.into_inner())
                })?;
                de.end().map_err(|e| json_error(String::new(), e))?;
                Ok(value)
            }
            Format::Toml => {
                let de = toml::Deserializer::new(self.text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let key = key_of(e.path());
                    let inner = e.into_inner();
                    let d = diag(key, inner.message().to_string());
                    let d = match inner.span() {
                        Some(span) => d.at_offset(self.text, span.start),
                        None => d,
                    };
                    PolicyError::Parse(Box::new(d))
                })
            }
            Format::Yaml => {
                let de = serde_norway::Deserializer::from_str(self.text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let key = key_of(e.path());
                    let inner = e.into_inner();
                    let loc = inner.location();
                    let message = strip_position(&inner.to_string());
                    // The YAML parser puts its own copy of the key path (or of the part
                    // it knows) in front; moat shows the key once, before the message.
                    let message = match message.split_once(": ") {
                        Some((path, rest)) if !path.is_empty() && key.starts_with(path) => {
                            rest.to_string()
                        }
                        _ => message,
                    };
                    let d = diag(key, message);
                    let d = match loc {
                        Some(l) => d.at_line_column(self.text, l.line(), l.column()),
                        None => d,
                    };
                    PolicyError::Parse(Box::new(d))
                })
            }
        }
    }
}

/// A key path for messages; the root is empty. A key the parser had not read yet (after a
/// syntax error, shown as `?`) ends the path: the position says where the problem is.
fn key_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => break,
        }
    }
    key
}

/// serde_json and YAML append "at line X column Y" to messages; moat shows the position in
/// front instead.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Tells the dialect of a parsed document from its keys.
pub fn detect(value: &serde_json::Value) -> Dialect {
    let Some(obj) = value.as_object() else {
        return Dialect::Moat;
    };
    let landlock = obj
        .get("process")
        .and_then(|p| p.get("landlock"))
        .and_then(|l| l.as_object());
    if landlock.is_none() && oci::is_config_json(value) {
        // A config.json without a Landlock policy: the OCI parser says so.
        return Dialect::OciPr1241;
    }
    let inner = landlock.unwrap_or(obj);
    if inner.contains_key("handledAccess") {
        return Dialect::OciPr1241;
    }
    if inner.get("ruleset").is_some_and(|r| r.is_object()) {
        return Dialect::OciPr1111;
    }
    if inner.contains_key("disableBestEffort") {
        return Dialect::OciPr1111;
    }
    if inner.contains_key("enableBestEffort") {
        return Dialect::OciPr1241;
    }
    if let Some(rules) = inner.get("rules").and_then(|r| r.as_object()) {
        if rules.contains_key("networkPort") {
            return Dialect::OciPr1241;
        }
        let paths_key = rules
            .get("pathBeneath")
            .and_then(|p| p.as_array())
            .and_then(|a| a.first())
            .and_then(|f| f.as_object());
        if let Some(first) = paths_key {
            if first.contains_key("paths") {
                return Dialect::OciPr1241;
            }
            return Dialect::OciPr1111;
        }
        return Dialect::OciPr1241;
    }
    const LANDLOCKCONFIG_KEYS: [&str; 7] = [
        "ruleset",
        "pathBeneath",
        "path_beneath",
        "netPort",
        "net_port",
        "variable",
        "abi",
    ];
    if LANDLOCKCONFIG_KEYS.iter().any(|k| inner.contains_key(*k)) {
        return Dialect::LandlockConfig;
    }
    Dialect::Moat
}

/// Parses a document of any dialect into the policy model.
///
/// moat's own dialect is read first, straight into its document type: the canonical form
/// that carries a policy from the admission webhook through moat-runtime to the launcher
/// (docs/kubernetes.md) is then parsed once. A document that reads as moat's is moat's
/// whatever [`detect`] would say (moat's keys are none of the other dialects'), so the
/// result is the same as detecting first. Any other document, and any mistake, takes the
/// general path, whose messages are unchanged.
pub fn parse_document(doc: &Document<'_>) -> Result<(Policy, Dialect), PolicyError> {
    if let Ok(policy) = moat::parse(doc) {
        return Ok((policy, Dialect::Moat));
    }
    let value = doc.value()?;
    let dialect = detect(&value);
    let policy = match dialect {
        Dialect::Moat => moat::parse(doc)?,
        Dialect::LandlockConfig => landlockconfig::parse(doc)?,
        Dialect::OciPr1241 | Dialect::OciPr1111 => oci::parse(doc, dialect)?,
    };
    Ok((policy, dialect))
}

/// Parses text of any format and dialect; `name` is used in messages and to guess the
/// format from its extension.
pub fn parse_str(name: &str, text: &str) -> Result<Policy, PolicyError> {
    parse_document(&Document::new(name, text)).map(|(p, _)| p)
}

/// Reads and parses a policy file of any format and dialect.
pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
    let meta = std::fs::metadata(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_DOCUMENT_BYTES as u64 {
        return Err(PolicyError::parse(
            &path.display().to_string(),
            "",
            format!(
                "file is {} bytes; policies are limited to {MAX_DOCUMENT_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    parse_str(&name, &text)
}
