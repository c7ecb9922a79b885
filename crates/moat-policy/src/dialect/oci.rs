//! OCI process.landlock (placeholder until implemented).
use super::{Dialect, Document};
use crate::error::PolicyError;
use crate::model::Policy;

/// Parses an OCI document.
pub fn parse(doc: &Document<'_>, _d: Dialect) -> Result<Policy, PolicyError> {
    Err(PolicyError::parse(doc.name, "", "oci: not yet implemented"))
}
