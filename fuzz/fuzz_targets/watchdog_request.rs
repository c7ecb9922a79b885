//! Feeds arbitrary requests to the watchdog's request-to-function mapping: the `Http_*`
//! environment (`cgi_headers`), path decoding, the `marshal_request` JSON envelope, header
//! canonicalisation and content sniffing. Nothing may panic; every variable must be
//! passable to `execve` (a name without `=`), and every envelope must be valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_watchdog::contract::{
    canonical_header_name, cgi_env, decode_path, marshal_request, sniff_content_type,
    RequestInfo,
};

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xff: method, raw path, query, host, then header name/value pairs,
    // then the body.
    let mut fields = data.split(|&b| b == 0xff);
    fn text(f: Option<&[u8]>) -> String {
        f.map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
    let method = text(fields.next());
    let raw_path = text(fields.next());
    let query = text(fields.next());
    let host = fields.next().unwrap_or_default().to_vec();
    let rest: Vec<&[u8]> = fields.collect();
    let (body, header_fields) = match rest.split_last() {
        Some((b, h)) => (*b, h),
        None => (&[][..], &[][..]),
    };
    let names: Vec<String> = header_fields
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c[0]).into_owned())
        .collect();
    let headers: Vec<(&str, &[u8])> = header_fields
        .chunks(2)
        .zip(&names)
        .map(|(c, n)| (n.as_str(), c.get(1).copied().unwrap_or_default()))
        .collect();
    for (n, _) in &headers {
        let c = canonical_header_name(n);
        assert_eq!(c.len(), n.len());
        assert!(c.eq_ignore_ascii_case(n));
    }
    let path = match decode_path(&raw_path) {
        Ok(p) => {
            assert!(!p.contains(&0));
            p
        }
        Err(_) => raw_path.as_bytes().to_vec(),
    };
    let chunked = body.first().is_some_and(|b| b & 1 == 1);
    let env = cgi_env(&RequestInfo {
        method: &method,
        path: &path,
        query: &query,
        host: &host,
        content_length: (!chunked).then_some(body.len() as u64),
        chunked,
        headers: &headers,
    });
    for (name, _) in &env {
        assert!(name.starts_with("Http_"), "{name}");
        assert!(!name.contains('=') && !name.contains('\0'), "{name:?}");
    }
    assert!(env.iter().any(|(n, _)| n == "Http_Method"));
    let envelope = marshal_request(&headers, body);
    let parsed: serde_json::Value =
        serde_json::from_slice(&envelope).expect("the envelope is valid JSON");
    assert!(parsed["header"].is_object() && parsed["body"]["raw"].is_string());
    let _ = sniff_content_type(body);
});
