//! The landlockconfig format (placeholder until implemented).
use super::Document;
use crate::error::PolicyError;
use crate::model::Policy;

/// Parses a landlockconfig document.
pub fn parse(doc: &Document<'_>) -> Result<Policy, PolicyError> {
    Err(PolicyError::parse(
        doc.name,
        "",
        "landlockconfig: not yet implemented",
    ))
}
