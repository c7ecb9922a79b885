//! `features`: the real runtime's answer, with what moat-runtime adds.

use moat_policy::annotations::TABLE;
use serde_json::Value;

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
    // Every annotation of the one contract (moat_policy::annotations), so that a new one
    // cannot be missing here.
    for a in TABLE {
        ann.insert(
            a.key.into(),
            Value::String(format!("{} (written by {})", a.meaning, a.written_by)),
        );
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
    use crate::policy_source::{POLICY_ANNOTATION, PRESET_ANNOTATION};

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
        for key in moat_policy::annotations::KNOWN {
            assert!(v["annotations"][key].is_string(), "{key}");
        }
    }
}
