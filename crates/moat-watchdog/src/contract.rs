//! The classic watchdog's HTTP contract, as pure functions: which methods run the function,
//! how a request becomes the function's environment (`cgi_headers`) or its JSON envelope
//! (`marshal_request`), how an exit status is reported, and which Content-Type a response
//! gets. No I/O: the handlers in `http` only gather the request's parts and call
//! these.
//!
//! Each rule follows the classic watchdog's Go code (handler.go, types.go) and the Go
//! standard library it relies on, so a function sees the same variables and bytes.

use base64::Engine;
use std::time::Duration;

/// The methods that run the function; any other gets 405. The order is the `Allow`
/// header's.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The `Allow` header of a 405 answer.
pub const ALLOW: &str = "GET, POST, PUT, PATCH, DELETE";

/// Whether `method` runs the function.
pub fn method_allowed(method: &str) -> bool {
    METHODS.contains(&method)
}

/// The metric label of a method: lower case for the methods HTTP defines, `other` for the
/// rest, so that a client cannot create label values at will.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "get",
        "POST" => "post",
        "PUT" => "put",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "HEAD" => "head",
        "OPTIONS" => "options",
        "CONNECT" => "connect",
        "TRACE" => "trace",
        _ => "other",
    }
}

/// A request header name as Go's `textproto.CanonicalMIMEHeaderKey` writes it: the first
/// letter and every letter after a `-` upper case, the others lower case
/// (`x-forwarded-for` -> `X-Forwarded-For`). A name with a byte outside HTTP's token
/// characters is returned unchanged, as Go does.
pub fn canonical_header_name(name: &str) -> String {
    if !name.bytes().all(is_token_byte) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Whether `name` is an HTTP header name (a non-empty token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_token_byte)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What the function's environment is built from: the parts of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a str,
    /// The path, percent-decoded (Go's `URL.Path`).
    pub path: &'a [u8],
    /// The raw query string, without `?` (Go's `URL.RawQuery`).
    pub query: &'a str,
    /// The host from the request line or the `Host` header (Go's `Request.Host`).
    pub host: &'a [u8],
    /// The body length when known in advance; `None` for a chunked body (Go's -1).
    pub content_length: Option<u64>,
    /// Whether the body is chunked.
    pub chunked: bool,
    /// Headers in arrival order, names as received (any case).
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// The `Http_*` variables of `cgi_headers`, in the classic watchdog's order: one per header
/// (its first value; `Host` and `Transfer-Encoding` are not headers to Go's server), then
/// `Http_Method`, `Http_ContentLength`, `Http_Content_Length`, `Http_Transfer_Encoding` for
/// a chunked body, `Http_Query`, `Http_Path` and `Http_Host` when not empty. A name may
/// appear twice (`Http_Content_Length`, from the header and from the length): the caller
/// keeps the last.
pub fn cgi_env(req: &RequestInfo<'_>) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(req.headers.len() + 7);
    let mut seen: Vec<String> = Vec::with_capacity(req.headers.len());
    for (name, value) in req.headers {
        if !is_header_name(name) {
            // Not a header name to HTTP (Go's server and hyper refuse the request): no
            // variable can be made of it.
            continue;
        }
        let canonical = canonical_header_name(name);
        if canonical == "Host" || (canonical == "Transfer-Encoding" && req.chunked) {
            continue;
        }
        if seen.contains(&canonical) {
            continue;
        }
        out.push((
            format!("Http_{}", canonical.replace('-', "_")),
            value.to_vec(),
        ));
        seen.push(canonical);
    }
    out.push(("Http_Method".into(), req.method.as_bytes().to_vec()));
    let length = match req.content_length {
        Some(n) => n.to_string(),
        None => "-1".to_string(),
    };
    out.push(("Http_ContentLength".into(), length.clone().into_bytes()));
    out.push(("Http_Content_Length".into(), length.into_bytes()));
    if req.chunked {
        out.push(("Http_Transfer_Encoding".into(), b"chunked".to_vec()));
    }
    if !req.query.is_empty() {
        out.push(("Http_Query".into(), req.query.as_bytes().to_vec()));
    }
    if !req.path.is_empty() {
        out.push(("Http_Path".into(), req.path.to_vec()));
    }
    if !req.host.is_empty() {
        out.push(("Http_Host".into(), req.host.to_vec()));
    }
    out
}

/// Why a request path cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits (Go's server answers 400).
    #[error("malformed percent-encoding in the request path")]
    BadEscape,
    /// A decoded NUL byte, which no environment variable can hold.
    #[error("the request path contains a NUL byte")]
    Nul,
}

/// Percent-decodes a request path as Go's `url.PathUnescape` does.
pub fn decode_path(raw: &str) -> Result<Vec<u8>, PathError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(PathError::Nul);
    }
    Ok(out)
}

/// The `marshal_request` envelope, byte for byte what Go's `json.Marshal` writes for the
/// classic watchdog's `MarshalReq`: `{"header":{...},"body":{"raw":"<base64>"}}`, header
/// names canonical and sorted, each with the list of its values; `Host` is not among them.
pub fn marshal_request(headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut grouped: Vec<(String, Vec<&[u8]>)> = Vec::new();
    for (name, value) in headers {
        let canonical = canonical_header_name(name);
        if canonical == "Host" || !is_header_name(name) {
            continue;
        }
        match grouped.iter_mut().find(|(n, _)| *n == canonical) {
            Some((_, values)) => values.push(value),
            None => grouped.push((canonical, vec![value])),
        }
    }
    // Go sorts map keys by their bytes.
    grouped.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::with_capacity(64 + body.len() * 4 / 3);
    out.extend_from_slice(b"{\"header\":{");
    for (i, (name, values)) in grouped.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        go_json_string(&mut out, name.as_bytes());
        out.extend_from_slice(b":[");
        for (j, v) in values.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            go_json_string(&mut out, v);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"},\"body\":{\"raw\":\"");
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(body)
            .as_bytes(),
    );
    out.extend_from_slice(b"\"}}");
    out
}

/// A JSON string as Go's encoder (1.22 and later) writes it: `<`, `>`, `&`, U+2028 and
/// U+2029 escaped as `\u00XX`/`\u20XX`, control characters as `\b`, `\f`, `\n`, `\r`, `\t`
/// or `\u00XX`, and each invalid UTF-8 byte as `\ufffd`.
fn go_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, invalid_len) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let (good, _) = rest.split_at(e.valid_up_to());
                // `good` is the prefix from_utf8 just validated.
                let s = std::str::from_utf8(good).unwrap_or_default();
                (s, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for c in valid.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
                '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let consumed = valid.len() + invalid_len;
        for _ in 0..invalid_len {
            out.extend_from_slice(b"\\ufffd");
        }
        rest = &rest[consumed..];
    }
    out.push(b'"');
}

/// How a function's process ended, as Go's `exec.ExitError` says it: `exit status N`, or
/// `signal: killed` (with ` (core dumped)` when it did).
pub fn exit_text(wait_status: i32) -> String {
    if libc::WIFEXITED(wait_status) {
        return format!("exit status {}", libc::WEXITSTATUS(wait_status));
    }
    if libc::WIFSIGNALED(wait_status) {
        let sig = libc::WTERMSIG(wait_status);
        let core = if libc::WCOREDUMP(wait_status) {
            " (core dumped)"
        } else {
            ""
        };
        return format!("signal: {}{core}", signal_name(sig));
    }
    format!("wait status {wait_status:#x}")
}

/// Go's names of Linux signals (`syscall.Signal.String()`).
fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        10 => "user defined signal 1",
        11 => "segmentation fault",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        16 => "stack fault",
        17 => "child exited",
        18 => "continued",
        19 => "stopped (signal)",
        20 => "stopped",
        21 => "stopped (tty input)",
        22 => "stopped (tty output)",
        23 => "urgent I/O condition",
        24 => "CPU time limit exceeded",
        25 => "file size limit exceeded",
        26 => "virtual timer expired",
        27 => "profiling timer expired",
        28 => "window changed",
        29 => "I/O possible",
        30 => "power failure",
        31 => "bad system call",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// The `X-Duration-Seconds` value: seconds with six decimals, as Go's `%f`.
pub fn duration_header(d: Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

/// The Content-Type of a response whose type nobody set, from its first bytes: a small
/// subset of Go's `http.DetectContentType` (which the classic watchdog's responses get
/// through Go's server), covering HTML, XML, PDF, common images and archives, JSON-less
/// text and binary data.
pub fn sniff_content_type(body: &[u8]) -> &'static str {
    let head = &body[..body.len().min(512)];
    let start = head
        .iter()
        .position(|b| !matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' '))
        .unwrap_or(head.len());
    let text = &head[start..];
    const HTML_TAGS: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    for tag in HTML_TAGS {
        if text.len() > tag.len()
            && text[..tag.len()].eq_ignore_ascii_case(tag)
            && (tag == b"<!--" || matches!(text[tag.len()], b' ' | b'>'))
        {
            return "text/html; charset=utf-8";
        }
    }
    if text.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    const SIGNATURES: [(&[u8], &str); 8] = [
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"\x1f\x8b\x08", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x00asm", "application/wasm"),
    ];
    for (sig, mime) in SIGNATURES {
        if head.starts_with(sig) {
            return mime;
        }
    }
    if head.starts_with(b"\xef\xbb\xbf") {
        return "text/plain; charset=utf-8";
    }
    let binary = head
        .iter()
        .any(|&b| matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f));
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_go() {
        assert_eq!(canonical_header_name("x-forwarded-by"), "X-Forwarded-By");
        assert_eq!(canonical_header_name("CONTENT-TYPE"), "Content-Type");
        assert_eq!(canonical_header_name("user-agent"), "User-Agent");
        assert_eq!(canonical_header_name("x_custom"), "X_custom");
        assert_eq!(canonical_header_name("a--b"), "A--B");
        assert_eq!(canonical_header_name("bad name"), "bad name");
    }

    #[test]
    fn cgi_env_matches_the_classic_watchdog() {
        let headers: [(&str, &[u8]); 6] = [
            ("host", b"example:8080"),
            ("user-agent", b"curl/8"),
            ("x-forwarded-by", b"http://my.vpn.com"),
            ("X-Forwarded-By", b"second"),
            ("content-length", b"5"),
            ("accept", b"*/*"),
        ];
        let env = cgi_env(&RequestInfo {
            method: "POST",
            path: b"/a b",
            query: "q=serverless&page=1",
            host: b"example:8080",
            content_length: Some(5),
            chunked: false,
            headers: &headers,
        });
        let text: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
            .collect();
        assert_eq!(
            text,
            [
                "Http_User_Agent=curl/8",
                "Http_X_Forwarded_By=http://my.vpn.com",
                "Http_Content_Length=5",
                "Http_Accept=*/*",
                "Http_Method=POST",
                "Http_ContentLength=5",
                "Http_Content_Length=5",
                "Http_Query=q=serverless&page=1",
                "Http_Path=/a b",
                "Http_Host=example:8080",
            ]
        );
        // Names that are not HTTP tokens make no variable.
        let headers: [(&str, &[u8]); 3] = [("bad\0name", b"x"), ("", b"y"), ("a=b", b"z")];
        let env = cgi_env(&RequestInfo {
            method: "GET",
            headers: &headers,
            ..RequestInfo::default()
        });
        assert!(env
            .iter()
            .all(|(k, _)| k.starts_with("Http_") && k.len() > 5 && !k.contains(['=', '\0'])));
        let headers: [(&str, &[u8]); 1] = [("transfer-encoding", b"chunked")];
        let env = cgi_env(&RequestInfo {
            method: "PUT",
            path: b"/",
            chunked: true,
            headers: &headers,
            ..RequestInfo::default()
        });
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Http_Method",
                "Http_ContentLength",
                "Http_Content_Length",
                "Http_Transfer_Encoding",
                "Http_Path"
            ]
        );
        assert_eq!(env[1].1, b"-1");
    }

    #[test]
    fn paths_decode_like_go() {
        assert_eq!(decode_path("/a%20b/c").unwrap(), b"/a b/c");
        assert_eq!(decode_path("/%e2%82%AC").unwrap(), "/€".as_bytes());
        assert_eq!(decode_path("/a+b").unwrap(), b"/a+b");
        assert_eq!(decode_path("/%zz"), Err(PathError::BadEscape));
        assert_eq!(decode_path("/%2"), Err(PathError::BadEscape));
        assert_eq!(decode_path("/%00"), Err(PathError::Nul));
    }

    #[test]
    fn marshal_request_is_go_json() {
        let headers: [(&str, &[u8]); 4] = [
            ("x-b", b"<1>&"),
            ("host", b"h"),
            ("accept", b"a\n\"\\\x01\xff\xe2\x80\xa8"),
            ("X-B", b"2"),
        ];
        let out = marshal_request(&headers, b"hello");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"header":{"Accept":["a\n\"\\\u0001\ufffd\u2028"],"X-B":["\u003c1\u003e\u0026","2"]},"body":{"raw":"aGVsbG8="}}"#
        );
        assert_eq!(
            String::from_utf8(marshal_request(&[], b"")).unwrap(),
            r#"{"header":{},"body":{"raw":""}}"#
        );
    }

    #[test]
    fn exit_texts_are_go_texts() {
        assert_eq!(exit_text(0), "exit status 0");
        assert_eq!(exit_text(3 << 8), "exit status 3");
        assert_eq!(exit_text(9), "signal: killed");
        assert_eq!(
            exit_text(11 | 0x80),
            "signal: segmentation fault (core dumped)"
        );
        assert_eq!(exit_text(40), "signal: signal 40");
    }

    #[test]
    fn durations_have_six_decimals() {
        assert_eq!(duration_header(Duration::from_micros(1500)), "0.001500");
        assert_eq!(duration_header(Duration::from_secs(2)), "2.000000");
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff_content_type(b"hello"), "text/plain; charset=utf-8");
        assert_eq!(
            sniff_content_type(b"{\"a\":1}"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            sniff_content_type(b"  <html><body>"),
            "text/html; charset=utf-8"
        );
        assert_eq!(sniff_content_type(b"<!-- x"), "text/html; charset=utf-8");
        assert_eq!(
            sniff_content_type(b"<?xml version"),
            "text/xml; charset=utf-8"
        );
        assert_eq!(sniff_content_type(b"\x89PNG\r\n\x1a\nxx"), "image/png");
        assert_eq!(
            sniff_content_type(b"\x00\x01\x02"),
            "application/octet-stream"
        );
        assert_eq!(sniff_content_type(b""), "text/plain; charset=utf-8");
        assert!(method_allowed("PATCH") && !method_allowed("HEAD") && !method_allowed("get"));
        assert_eq!(method_label("BREW"), "other");
    }
}
