//! JSON Patch (RFC 6902) operations, the form a mutating webhook answers with.
//!
//! The webhook only ever adds or replaces values, so one operation kind, `add`, is enough:
//! on an object member it creates the member or replaces its value (RFC 6902, 4.1).

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One JSON Patch operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Op {
    /// Always `add`.
    pub op: &'static str,
    /// A JSON Pointer (RFC 6901).
    pub path: String,
    /// The value to put there.
    pub value: Value,
}

impl Op {
    /// `add` `value` at `path`.
    pub fn add(path: impl Into<String>, value: Value) -> Op {
        Op {
            op: "add",
            path: path.into(),
            value,
        }
    }
}

/// Escapes one reference token of a JSON Pointer (RFC 6901, 3): `~` becomes `~0` and `/`
/// becomes `~1`, in that order. Annotation keys hold a `/`, so this is not optional.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Operations that give the annotations in `set` their values. `existing` is the object's
/// annotation map, `None` when `metadata.annotations` is absent: adding a member to a
/// missing object fails, so the map is then created whole. Values already in place are
/// left out, so a pod that already carries moat's annotations gets no operation at all.
pub fn set_annotations(
    existing: Option<&BTreeMap<String, String>>,
    set: &[(String, String)],
) -> Vec<Op> {
    match existing {
        None if set.is_empty() => Vec::new(),
        None => {
            let map = set
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>();
            vec![Op::add("/metadata/annotations", Value::Object(map))]
        }
        Some(existing) => set
            .iter()
            .filter(|(k, v)| existing.get(k) != Some(v))
            .map(|(k, v)| {
                Op::add(
                    format!("/metadata/annotations/{}", escape(k)),
                    Value::String(v.clone()),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(escape("container.moat.dev/web"), "container.moat.dev~1web");
        assert_eq!(escape("a~/b"), "a~0~1b");
    }

    #[test]
    fn creates_the_map_when_absent_and_skips_unchanged_values() {
        let set = vec![
            ("a/b".to_string(), "1".to_string()),
            ("c".to_string(), "2".to_string()),
        ];
        let ops = set_annotations(None, &set);
        assert_eq!(
            ops,
            [Op::add(
                "/metadata/annotations",
                serde_json::json!({"a/b": "1", "c": "2"})
            )]
        );
        let existing: BTreeMap<_, _> = [("c".to_string(), "2".to_string())].into();
        let ops = set_annotations(Some(&existing), &set);
        assert_eq!(ops, [Op::add("/metadata/annotations/a~1b", "1".into())]);
        assert!(set_annotations(None, &[]).is_empty());
    }
}
