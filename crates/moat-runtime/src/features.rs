//! `features`: the real runtime's answer, with what moat-runtime adds.

use crate::policy_source::{COMPAT_ANNOTATION, POLICY_ANNOTATION, PRESET_ANNOTATION};
use serde_json::Value;

/// The annotations moat-runtime reads, with a short description each.
pub const ANNOTATIONS: [(&str, &str); 3] = [
    (
        POLICY_ANNOTATION,
        "Landlock policy document (moat TOML/JSON/YAML, landlockconfig, OCI process.landlock) enforced inside the container",
    ),
    (PRESET_ANNOTATION, "name of a built-in moat policy preset enforced inside the container"),
    (COMPAT_ANNOTATION, "strict (default) or best-effort"),
];

/// Adds moat-runtime's annotations to the real runtime's `features` document.
pub fn extend(features: &mut Value) -> Result<(), String> {
    let obj = features
        .as_object_mut()
        .ok_or("the features document is not a JSON object")?;
    let ann = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if ann.is_null() {
        *ann = Value::Object(Default::default());
    }
    let ann = ann
        .as_object_mut()
        .ok_or("the features document's `annotations` is not an object")?;
    for (k, v) in ANNOTATIONS {
        ann.insert(k.into(), Value::String(v.into()));
    }
    ann.insert(
        "dev.moat.runtime.version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_annotations_and_keeps_the_rest() {
        let mut v = serde_json::json!({"ociVersionMax":"1.0.2","annotations":{"a":"b"}});
        extend(&mut v).unwrap();
        assert_eq!(v["annotations"]["a"], "b");
        assert!(v["annotations"][POLICY_ANNOTATION].is_string());
        assert_eq!(v["ociVersionMax"], "1.0.2");
        let mut v = serde_json::json!({});
        extend(&mut v).unwrap();
        assert!(v["annotations"][PRESET_ANNOTATION].is_string());
    }
}
