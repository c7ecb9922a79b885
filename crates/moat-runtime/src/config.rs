//! A bundle's `config.json`, edited as raw JSON.
//!
//! `oci-spec` and similar typed models drop fields they do not know when they write the
//! document back; moat-runtime must keep every field (including `process.landlock` and
//! whatever a newer runtime-spec adds), so it reads and edits a [`serde_json::Value`].

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A config.json that cannot be read or is not an OCI configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("`{}` is not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// A field has the wrong shape.
    #[error("`{}`: {message}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A bundle's configuration: its path, the original bytes and the parsed document.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The document.
    pub value: Value,
}

impl Config {
    /// Reads `<bundle>/config.json`.
    pub fn read(bundle: &Path) -> Result<Config, ConfigError> {
        let path = bundle.join("config.json");
        let raw = std::fs::read(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Config::from_bytes(path, raw)
    }

    /// Parses bytes read from `path`.
    pub fn from_bytes(path: PathBuf, raw: Vec<u8>) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_slice(&raw).map_err(|source| ConfigError::Json {
            path: path.clone(),
            source,
        })?;
        if !value.is_object() {
            return Err(ConfigError::Shape {
                path,
                message: "the document is not a JSON object".into(),
            });
        }
        Ok(Config { path, value })
    }

    fn shape(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Shape {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// The annotations, as strings. A non-object `annotations` or a non-string value is an
    /// error: runtimes would refuse it too, and guessing could drop a policy.
    pub fn annotations(&self) -> Result<Vec<(&str, &str)>, ConfigError> {
        match self.value.get("annotations") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => Ok((k.as_str(), s)),
                    None => Err(self.shape(format!("annotation `{k}` is not a string"))),
                })
                .collect(),
            Some(_) => Err(self.shape("`annotations` is not an object")),
        }
    }

    /// `process.landlock`, when present and not null.
    pub fn process_landlock(&self) -> Option<&Value> {
        self.value
            .get("process")
            .and_then(|p| p.get("landlock"))
            .filter(|v| !v.is_null())
    }

    /// `process` as an object, for editing.
    pub fn process_mut(&mut self) -> Result<&mut Map<String, Value>, ConfigError> {
        let err = self.shape("`process` is missing or not an object");
        self.value
            .get_mut("process")
            .and_then(|p| p.as_object_mut())
            .ok_or(err)
    }

    /// Puts `prefix` in front of `process.args`.
    pub fn prefix_args(&mut self, prefix: &[String]) -> Result<(), ConfigError> {
        let err = self.shape("`process.args` is missing, empty or not a list of strings");
        let process = self.process_mut()?;
        prefix_args(process, prefix).ok_or(err)
    }

    /// Appends a mount to `mounts`.
    pub fn add_mount(&mut self, mount: Value) -> Result<(), ConfigError> {
        let err = self.shape("`mounts` is not a list");
        let Some(obj) = self.value.as_object_mut() else {
            return Err(err);
        };
        let mounts = obj
            .entry("mounts")
            .or_insert_with(|| Value::Array(Vec::new()));
        if mounts.is_null() {
            *mounts = Value::Array(Vec::new());
        }
        mounts.as_array_mut().ok_or(err)?.push(mount);
        Ok(())
    }

    /// Sets an annotation.
    pub fn set_annotation(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let err = self.shape("`annotations` is not an object");
        let Some(obj) = self.value.as_object_mut() else {
            return Err(err);
        };
        let a = obj
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if a.is_null() {
            *a = Value::Object(Map::new());
        }
        a.as_object_mut()
            .ok_or(err)?
            .insert(key.to_string(), Value::String(value.to_string()));
        Ok(())
    }

    /// The document as JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        // A Value always serialises.
        serde_json::to_vec(&self.value).unwrap_or_default()
    }
}

/// Puts `prefix` in front of a process object's `args`; `None` when `args` is missing,
/// empty or holds a non-string.
pub fn prefix_args(process: &mut Map<String, Value>, prefix: &[String]) -> Option<()> {
    let args = process.get_mut("args")?.as_array_mut()?;
    if args.is_empty() || args.iter().any(|a| !a.is_string()) {
        return None;
    }
    let mut new: Vec<Value> = prefix.iter().cloned().map(Value::String).collect();
    new.append(args);
    *args = new;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<Config, ConfigError> {
        Config::from_bytes("config.json".into(), text.as_bytes().to_vec())
    }

    #[test]
    fn unknown_fields_survive_edits() {
        let mut c = cfg(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"x-new":{"a":1}},"future":[1,2]}"#,
        )
        .unwrap();
        c.prefix_args(&["/l".into(), "--".into()]).unwrap();
        c.add_mount(serde_json::json!({"destination":"/d"}))
            .unwrap();
        c.set_annotation("k", "v").unwrap();
        let back: Value = serde_json::from_slice(&c.to_json()).unwrap();
        assert_eq!(back["future"], serde_json::json!([1, 2]));
        assert_eq!(back["process"]["x-new"]["a"], 1);
        assert_eq!(
            back["process"]["args"],
            serde_json::json!(["/l", "--", "sh"])
        );
        assert_eq!(back["mounts"][0]["destination"], "/d");
        assert_eq!(back["annotations"]["k"], "v");
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(matches!(cfg("{"), Err(ConfigError::Json { .. })));
        assert!(matches!(cfg("[]"), Err(ConfigError::Shape { .. })));
        let c = cfg(r#"{"annotations":{"a":1}}"#).unwrap();
        assert!(c.annotations().is_err());
        let mut c = cfg(r#"{"process":{"args":[]}}"#).unwrap();
        assert!(c.prefix_args(&["x".into()]).is_err());
    }
}
