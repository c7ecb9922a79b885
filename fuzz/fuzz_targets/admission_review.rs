//! Feeds arbitrary bytes to the admission webhook's decision, on both endpoints, as the
//! request body the API server would send. Nothing may panic: garbage is a BadRequest,
//! anything that parses gets an answer. The seed corpus (seeds/admission_review/) holds
//! real AdmissionReview documents so that mutations reach the pod and policy paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_k8s::admission::review;
use moat_k8s::opt_in::Scope;

fuzz_target!(|data: &[u8]| {
    for scope in [Scope::Pod, Scope::Namespace] {
        if let Ok(outcome) = review(data, scope) {
            // Whatever is answered must itself be valid JSON.
            assert!(serde_json::from_slice::<serde_json::Value>(&outcome.body).is_ok());
        }
    }
});
