//! Every user-facing error message of policy loading, one table row each: the issue asks
//! that "parser tests cover every dialect and every error message".
//!
//! A row is a minimal document (or call) that triggers one message. For a parse error the
//! row gives the exact `file:line:column` the message must start with, the key path shown
//! after it (`filesystem.rule[0].rights[1]`), and the distinctive text of the message; the
//! result must be an `Err` (nothing half-parsed). A failing row prints its name, its input
//! and the actual message; every failing row of a table is reported at once.
//!
//! serde's derived `Deserialize` reads a sequence written where a struct belongs as the
//! struct's fields in order, so TOML and JSON once accepted `network = [true]` (as
//! `network.unrestricted = true`), `scopes = [false, false]`, a JSON document `[]` and OCI
//! `"handledAccess": []`, each weakening the sandbox. Every table of every dialect is now
//! read through the dialects' `Table` wrapper, which refuses anything but a table; the
//! "list for a table" rows of each dialect below, in TOML, JSON and YAML, and
//! `direct_parsers_refuse_a_list`, keep it so, as the "wrong type" rows do for scalars.
//!
//! What is not here, on purpose:
//! - `presets nest deeper than 8 levels` (dialect/moat.rs) cannot be reached from a
//!   document: a document may only name the presets moat ships, and those nest one level
//!   (`network-client`, `shell` and `web-server` include `default`, which includes none).
//!   `shipped_presets_nest_within_the_limit` checks that this stays true.
//! - Unknown keys outside `process.landlock` in a whole `config.json` are ignored by
//!   design (a config.json has many other fields).

use moat_policy::dialect::{landlockconfig, oci, Dialect, Document, Format, MAX_DOCUMENT_BYTES};
use moat_policy::write::{self, WriteError, Written};
use moat_policy::{
    load_file, parse_port_list, parse_str, Compat, FsAccess, FsRight, NetAccess, NetRight, Policy,
    PolicyError, PortError, PortRange, ScopeSet, Vars,
};
use std::path::{Path, PathBuf};

// ----------------------------------------------------------------------------------------
// The table machinery.

/// One document that must be refused with a positioned parse error.
struct Case {
    name: &'static str,
    /// The document's name: its extension picks the syntax (none: sniffed).
    file: &'static str,
    text: String,
    /// `Some((line, column))`: the message starts `file:line:column: `; `None`: `file: `.
    at: Option<(usize, usize)>,
    /// The key path shown after the position, or empty for none.
    key: String,
    /// Text the message must hold.
    says: &'static [&'static str],
}

fn case(
    name: &'static str,
    file: &'static str,
    text: impl Into<String>,
    at: Option<(usize, usize)>,
    key: impl Into<String>,
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        file,
        text: text.into(),
        at,
        key: key.into(),
        says,
    }
}

/// `Some((line, column))`, shorter.
fn at(line: usize, column: usize) -> Option<(usize, usize)> {
    Some((line, column))
}

/// An input for a failure report: escaped, and cut when huge.
fn show(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let cut: String = text.chars().take(120).collect();
    format!("{cut:?}... ({} bytes in all)", text.len())
}

/// A parser of a document: its name and text.
type Parser = fn(&str, &str) -> Result<Policy, PolicyError>;

/// Checks one row against `parse`; `Err` holds what is wrong and the actual message.
fn check(c: &Case, parse: Parser) -> Result<(), String> {
    let err = match parse(c.file, &c.text) {
        Ok(p) => return Err(format!("expected an error, but it parsed: {p:?}")),
        Err(e) => e,
    };
    let shown = err.to_string();
    let PolicyError::Parse(d) = &err else {
        return Err(format!(
            "expected a parse error, got {err:?}\n  actual: {shown}"
        ));
    };
    let mut problems = Vec::new();
    let mut prefix = c.file.to_string();
    if let Some((line, column)) = c.at {
        prefix.push_str(&format!(":{line}:{column}"));
    }
    prefix.push_str(": ");
    if !c.key.is_empty() {
        prefix.push_str(&format!("`{}`: ", c.key));
    }
    if !shown.starts_with(&prefix) {
        problems.push(format!("does not start with {prefix:?}"));
    }
    if d.file != c.file || (d.line.zip(d.column)) != c.at || d.key != c.key {
        problems.push(format!(
            "diagnostic fields: file {:?}, line {:?}, column {:?}, key {:?}",
            d.file, d.line, d.column, d.key
        ));
    }
    for s in c.says {
        if !d.message.contains(s) {
            problems.push(format!("message lacks {s:?}"));
        }
    }
    // The key is shown once, in front, not again inside the message.
    if !c.key.is_empty() && d.message.contains(&format!("{}: ", c.key)) {
        problems.push("the message repeats the key path".to_string());
    }
    // A position on an existing line comes with that line, for the snippet.
    if let Some((line, _)) = c.at {
        let expected = c.text.lines().nth(line - 1);
        if expected.is_some() && d.source_line.as_deref() != expected {
            problems.push(format!("snippet line is {:?}", d.source_line));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n  actual: {shown}", problems.join("\n  ")))
    }
}

/// Runs a table of parse cases, reporting every failing row.
fn run(table: &[Case]) {
    run_with(table, parse_str);
}

/// Runs a table of parse cases against `parse`.
fn run_with(table: &[Case], parse: Parser) {
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for c in table {
        assert!(names.insert(c.name), "two rows are named `{}`", c.name);
        if let Err(why) = check(c, parse) {
            failures.push(format!(
                "case `{}`\n  input ({}): {}\n  {why}",
                c.name,
                c.file,
                show(&c.text)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        table.len(),
        failures.join("\n\n")
    );
}

/// Reports failures of a table whose rows are checked by the caller.
fn report(total: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ----------------------------------------------------------------------------------------
// Syntax errors of each format, before any dialect reads the document.

#[test]
fn syntax_errors_of_each_format() {
    run(&[
        // TOML.
        case(
            "toml: unclosed table header",
            "p.toml",
            "[filesystem\n",
            at(1, 12),
            "",
            &["invalid table header"],
        ),
        case(
            "toml: key without a value",
            "p.toml",
            "compat = \n",
            at(1, 10),
            "",
            &["invalid string"],
        ),
        case(
            "toml: duplicate key",
            "p.toml",
            "compat = \"strict\"\ncompat = \"strict\"\n",
            at(2, 1),
            "",
            &["duplicate key `compat`"],
        ),
        case(
            "toml: unterminated string",
            "p.toml",
            "description = \"abc\n",
            at(1, 19),
            "",
            &["invalid basic string"],
        ),
        case(
            "toml: invalid escape",
            "p.toml",
            "[filesystem]\nread = [\"\\q\"]\n",
            at(2, 12),
            "",
            &["invalid escape sequence"],
        ),
        case(
            "toml: integer beyond 64 bits",
            "p.toml",
            "[network]\nbind_tcp = [18446744073709551616]\n",
            at(2, 13),
            "",
            &["number too large"],
        ),
        // JSON.
        case(
            "json: empty document",
            "p.json",
            "",
            at(1, 1),
            "",
            &["EOF while parsing a value"],
        ),
        case(
            "json: trailing comma",
            "p.json",
            r#"{"filesystem": {"read": ["/a",]}}"#,
            at(1, 31),
            "filesystem.read",
            &["trailing comma"],
        ),
        case(
            "json: text after the document",
            "p.json",
            r#"{"filesystem": {}} x"#,
            at(1, 20),
            "",
            &["trailing characters"],
        ),
        case(
            "json: unclosed top-level object (no `?` key)",
            "p.json",
            r#"{"filesystem": {"read": ["/a"]}"#,
            at(1, 31),
            "",
            &["EOF while parsing an object"],
        ),
        case(
            "json: end after a comma (key stops before the unread one)",
            "p.json",
            r#"{"filesystem": {"read": ["/a"], "#,
            at(1, 32),
            "filesystem",
            &["EOF while parsing a value"],
        ),
        case(
            "json: bare word",
            "p.json",
            r#"{"compat": strict}"#,
            at(1, 12),
            "compat",
            &["expected value"],
        ),
        case(
            "json: raw control character in a string",
            "p.json",
            "{\"filesystem\": {\"read\": [\"/a\u{1}\"]}}",
            at(1, 29),
            "filesystem.read[0]",
            &["control character (\\u0000-\\u001F) found while parsing a string"],
        ),
        case(
            "json: lone surrogate escape",
            "p.json",
            r#"{"filesystem": {"read": ["/a\ud800"]}}"#,
            at(1, 35),
            "filesystem.read[0]",
            &["unexpected end of hex escape"],
        ),
        case(
            "json: duplicate key",
            "p.json",
            r#"{"filesystem": {}, "filesystem": {}}"#,
            at(1, 31),
            "",
            &["duplicate field `filesystem`"],
        ),
        // YAML.
        case(
            "yaml: unclosed flow list",
            "p.yaml",
            "filesystem:\n  read: [/a\n",
            at(3, 1),
            "filesystem.read",
            &["did not find expected ',' or ']'"],
        ),
        case(
            "yaml: tab indentation",
            "p.yaml",
            "filesystem:\n\tread: [/a]\n",
            at(2, 1),
            "filesystem",
            &["found character that cannot start any token"],
        ),
        case(
            "yaml: unknown anchor",
            "p.yaml",
            "compat: strict\ndescription: *nope\n",
            at(2, 14),
            "description",
            &["unknown anchor"],
        ),
        case(
            "yaml: two documents",
            "p.yaml",
            "compat: strict\n---\ncompat: strict\n",
            None,
            "",
            &["more than one document is not supported"],
        ),
        case(
            "yaml: duplicate key (at its table)",
            "p.yaml",
            "filesystem:\n  read: [/a]\n  read: [/b]\n",
            at(2, 3),
            "filesystem",
            &["duplicate field `read`"],
        ),
        case(
            "yaml: integer beyond 64 bits (not blamed on JSON)",
            "p.yaml",
            "network:\n  bind_tcp: [18446744073709551616]\n",
            at(2, 14),
            "network.bind_tcp[0]",
            &["number out of range (integers are limited to 64 bits)"],
        ),
        // No extension: `{` is JSON, TOML that parses or starts like TOML is TOML,
        // anything else is YAML.
        case(
            "sniffed: JSON",
            "policy",
            "{\"filesystem\": \n",
            at(2, 1),
            "filesystem",
            &["EOF while parsing a value"],
        ),
        case(
            "sniffed: TOML",
            "policy",
            "filesystem = 1\n",
            at(1, 14),
            "filesystem",
            &["invalid type: integer `1`, expected a table of filesystem settings"],
        ),
        case(
            "sniffed: broken TOML is reported as TOML",
            "policy",
            "[filesystem\nread = [\"/a\"]\n",
            at(1, 12),
            "",
            &["invalid table header"],
        ),
        case(
            "sniffed: broken TOML, key = value first",
            "policy",
            "# a policy\nversion = 1\n[filesystem]\nread = [\"/a\"\n",
            at(5, 1),
            "",
            &["invalid array"],
        ),
        case(
            "private_tmp takes a boolean",
            "p.toml",
            "[filesystem]\nprivate_tmp = \"yes\"\n",
            at(2, 15),
            "filesystem.private_tmp",
            &["invalid type: string \"yes\", expected a boolean"],
        ),
        case(
            "extension: .yml is YAML",
            "p.yml",
            "filesystem: [\n",
            at(2, 1),
            "filesystem",
            &["did not find expected node content"],
        ),
        case(
            "extension: upper-case .JSON is JSON",
            "P.JSON",
            "{,}",
            at(1, 2),
            "",
            &["key must be a string"],
        ),
    ]);
}

// ----------------------------------------------------------------------------------------
// Hostile inputs: size, depth, NUL bytes, numbers out of every range.

#[test]
fn hostile_inputs() {
    let over = MAX_DOCUMENT_BYTES + 1;
    // Valid TOML (an array of empty tables), so that only the size refuses it.
    let huge = "[[x]]\n".repeat(over / 6 + 1);
    let deep_json = format!(
        "{{\"filesystem\": {}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let deep_json_objects = format!("{}1{}", "{\"a\": ".repeat(200), "}".repeat(200));
    let deep_yaml = format!("filesystem: {}1{}\n", "[".repeat(200), "]".repeat(200));
    let deep_yaml_blocks: String = (0..200)
        .map(|i| format!("{}a:\n", "  ".repeat(i)))
        .collect();
    let deep_toml = format!(
        "[filesystem]\nread = {}1{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    // "Billion laughs": nine levels of nine aliases each.
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for level in b'b'..=b'j' {
        let (cur, prev) = (level as char, (level - 1) as char);
        let refs = vec![format!("*{prev}"); 9].join(", ");
        laughs.push_str(&format!("{cur}: &{cur} [{refs}]\n"));
    }
    // The exact numbers are checked in `the_size_limit_is_inclusive`.
    let too_big: &[&str] = &["document is ", " bytes; policies are limited to "];

    run(&[
        // Size: refused before any parsing, in every syntax.
        case("huge: TOML", "p.toml", huge.clone(), None, "", too_big),
        case("huge: JSON", "p.json", huge.clone(), None, "", too_big),
        case("huge: YAML", "p.yaml", huge.clone(), None, "", too_big),
        case("huge: sniffed", "policy", huge, None, "", too_big),
        // Depth: each parser stops at its recursion limit.
        case(
            "deep: JSON lists",
            "p.json",
            deep_json,
            at(1, 142),
            format!("filesystem{}", "[0]".repeat(126)),
            &["recursion limit exceeded"],
        ),
        case(
            "deep: JSON objects",
            "p.json",
            deep_json_objects,
            at(1, 763),
            vec!["a"; 127].join("."),
            &["recursion limit exceeded"],
        ),
        case(
            "deep: YAML flow lists",
            "p.yaml",
            deep_yaml,
            at(1, 140),
            format!("filesystem{}", "[0]".repeat(127)),
            &["recursion limit exceeded"],
        ),
        case(
            "deep: YAML block mappings",
            "p.yaml",
            deep_yaml_blocks,
            at(129, 257),
            vec!["a"; 128].join("."),
            &["recursion limit exceeded"],
        ),
        case(
            "deep: TOML arrays",
            "p.toml",
            deep_toml,
            at(2, 87),
            "",
            &["recursion limit exceeded"],
        ),
        case(
            "yaml: alias expansion bomb",
            "p.yaml",
            laughs,
            None,
            "f[0][4][6][7][2]",
            &["repetition limit exceeded"],
        ),
        // NUL bytes in paths, escaped or raw, in every place a path is written.
        case(
            "NUL: moat TOML list entry",
            "p.toml",
            "[filesystem]\nread = [\"/a\\u0000b\"]\n",
            at(2, 9),
            "filesystem.read[0]",
            &["path contains a NUL byte"],
        ),
        case(
            "NUL: moat TOML path table",
            "p.toml",
            "[filesystem]\nread = [{ path = \"/a\\u0000\", optional = true }]\n",
            at(2, 18),
            "filesystem.read[0].path",
            &["path contains a NUL byte"],
        ),
        case(
            "NUL: moat TOML rule path written alone",
            "p.toml",
            "[[filesystem.rule]]\npaths = \"/a\\u0000\"\nrights = [\"read\"]\n",
            at(2, 9),
            "filesystem.rule[0].paths",
            &["path contains a NUL byte"],
        ),
        case(
            "NUL: moat JSON escape",
            "p.json",
            r#"{"filesystem": {"read": ["/a\u0000"]}}"#,
            at(1, 35),
            "filesystem.read[0]",
            &["path contains a NUL byte"],
        ),
        case(
            "NUL: moat YAML escape",
            "p.yaml",
            "filesystem:\n  read: [\"/a\\0\"]\n",
            at(2, 10),
            "filesystem.read[0]",
            &["path contains a NUL byte"],
        ),
        case(
            "NUL: raw in TOML",
            "p.toml",
            "[filesystem]\nread = [\"/a\0\"]\n",
            at(2, 12),
            "",
            &["invalid basic string"],
        ),
        case(
            "NUL: raw in JSON",
            "p.json",
            "{\"filesystem\": {\"read\": [\"/a\0\"]}}",
            at(1, 29),
            "filesystem.read[0]",
            &["control character"],
        ),
        case(
            "NUL: raw in YAML",
            "p.yaml",
            "filesystem:\n  read: [\"/a\0\"]\n",
            at(1, 1),
            "",
            &["control characters are not allowed"],
        ),
        case(
            "NUL: landlockconfig parent",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": ["/a\u0000"]}]}"#,
            at(1, 69),
            "pathBeneath[0].parent[0]",
            &["text contains a NUL byte"],
        ),
        case(
            "NUL: landlockconfig variable literal",
            "lc.json",
            r#"{"variable": [{"name": "a", "literal": ["/a\u0000"]}]}"#,
            at(1, 50),
            "variable[0].literal[0]",
            &["text contains a NUL byte"],
        ),
        case(
            "NUL: OCI path",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": ["execute"]}, "rules": {"pathBeneath": [{"allowedAccess": ["execute"], "paths": ["/a\u0000"]}]}}"#,
            at(1, 129),
            "rules.pathBeneath[0].paths[0]",
            &["path contains a NUL byte"],
        ),
        // Ports: negative, too large, 2^64, floats, text.
        case(
            "port: -1 (TOML)",
            "p.toml",
            "[network]\nbind_tcp = [-1]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["port -1 is outside 0..=65535"],
        ),
        case(
            "port: -1 (YAML)",
            "p.yaml",
            "network:\n  connect_tcp:\n    - 80\n    - -1\n",
            at(4, 7),
            "network.connect_tcp[1]",
            &["port -1 is outside 0..=65535"],
        ),
        case(
            "port: i64::MIN",
            "p.toml",
            "[network]\nbind_udp = [-9223372036854775808]\n",
            at(2, 13),
            "network.bind_udp[0]",
            &["port -9223372036854775808 is outside 0..=65535"],
        ),
        case(
            "port: 65536 (integer)",
            "p.toml",
            "[network]\nconnect_udp = [65536]\n",
            at(2, 16),
            "network.connect_udp[0]",
            &["port 65536 is outside 0..=65535"],
        ),
        case(
            "port: 65536 (text)",
            "p.toml",
            "[network]\nbind_tcp = [\"65536\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["port 65536 is outside 0..=65535"],
        ),
        case(
            "port: u64::MAX (JSON)",
            "p.json",
            r#"{"network": {"bind_tcp": [18446744073709551615]}}"#,
            at(1, 46),
            "network.bind_tcp[0]",
            &["port 18446744073709551615 is outside 0..=65535"],
        ),
        case(
            "port: 2^64 (JSON reads it as a float)",
            "p.json",
            r#"{"network": {"bind_tcp": [18446744073709551616]}}"#,
            at(1, 46),
            "network.bind_tcp[0]",
            &["port 18446744073709551616 is outside 0..=65535"],
        ),
        case(
            "port: 1e300",
            "p.json",
            r#"{"network": {"bind_tcp": [1e300]}}"#,
            at(1, 31),
            "network.bind_tcp[0]",
            &["port 1e300 is outside 0..=65535"],
        ),
        case(
            "port: 44 digits of text",
            "p.toml",
            "[network]\nbind_tcp = [\"99999999999999999999999999999999999999999999\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            // The number shown is where parsing saturated (i128::MAX), not the text.
            &["is outside 0..=65535"],
        ),
        case(
            "port: 80.5",
            "p.toml",
            "[network]\nbind_tcp = [80.5]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["port 80.5 is not a whole number"],
        ),
        case(
            "port: 80.0",
            "p.json",
            r#"{"network": {"bind_tcp": [80.0]}}"#,
            at(1, 30),
            "network.bind_tcp[0]",
            &["port 80.0 is written as a decimal number; write 80"],
        ),
        case(
            "port: 1e3",
            "p.yaml",
            "network:\n  bind_tcp: [1e3]\n",
            at(2, 14),
            "network.bind_tcp[0]",
            &["port 1000.0 is written as a decimal number; write 1000"],
        ),
        case(
            "port: nan",
            "p.toml",
            "[network]\nbind_tcp = [nan]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["port NaN is not a whole number"],
        ),
        case(
            "port: .inf",
            "p.yaml",
            "network:\n  bind_tcp: [.inf]\n",
            at(2, 14),
            "network.bind_tcp[0]",
            &["port inf is not a whole number"],
        ),
        case(
            "port: not a number",
            "p.toml",
            "[network]\nbind_tcp = [\"http\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["`http` is not a port or a port range (write 8080 or 8000-8010)"],
        ),
        case(
            "port: empty text",
            "p.toml",
            "[network]\nbind_tcp = [\"\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["`` is not a port or a port range"],
        ),
        case(
            "port: two dashes",
            "p.toml",
            "[network]\nbind_tcp = [\"1-2-3\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["`1-2-3` is not a port or a port range"],
        ),
        case(
            "port: negative range end",
            "p.toml",
            "[network]\nbind_tcp = [\"80--1\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["`80--1` is not a port or a port range"],
        ),
        case(
            "port: reversed range",
            "p.yaml",
            "network:\n  bind_tcp: [\"10-5\"]\n",
            at(2, 14),
            "network.bind_tcp[0]",
            &["port range 10-5 ends before it starts"],
        ),
        case(
            "port: range past 65535",
            "p.toml",
            "[network]\nbind_tcp = [\"65000-70000\"]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["port 70000 is outside 0..=65535"],
        ),
        case(
            "port: boolean",
            "p.toml",
            "[network]\nbind_tcp = [true]\n",
            at(2, 13),
            "network.bind_tcp[0]",
            &["invalid type: boolean `true`, expected a port number or a range such as \"8000-8010\""],
        ),
        // Right bits: negative, unknown, out of u64, floats.
        case(
            "rights: negative number",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = [-1]\n",
            at(3, 11),
            "filesystem.rule[0].rights[0]",
            &["filesystem right value -1 is negative"],
        ),
        case(
            "rights: unknown filesystem bit",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = [\"read_file\", 1048576]\n",
            at(3, 24),
            "filesystem.rule[0].rights[1]",
            &["filesystem right bits 0x100000 are unknown to moat (it knows 0x1ffff, up to Landlock ABI 10)"],
        ),
        case(
            "rights: unknown bit written in hex text",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = [\"0x100000\"]\n",
            at(3, 11),
            "filesystem.rule[0].rights[0]",
            &["filesystem right bits 0x100000 are unknown to moat"],
        ),
        case(
            "rights: u64::MAX",
            "p.json",
            r#"{"filesystem": {"rule": [{"paths": "/a", "rights": [18446744073709551615]}]}}"#,
            at(1, 72),
            "filesystem.rule[0].rights[0]",
            &["filesystem right bits 0xfffffffffffe0000 are unknown to moat"],
        ),
        case(
            "rights: hex beyond 64 bits is not a name",
            "p.toml",
            "[network]\nhandled = \"0x1ffffffffffffffff\"\n",
            at(2, 11),
            "network.handled",
            &["unknown network right `0x1ffffffffffffffff`"],
        ),
        case(
            "rights: unknown network bit",
            "p.toml",
            "[network]\nhandled = [256]\n",
            at(2, 12),
            "network.handled[0]",
            &["network right bits 0x100 are unknown to moat (it knows 0xf"],
        ),
        case(
            "rights: float",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = [1.5]\n",
            at(3, 11),
            "filesystem.rule[0].rights[0]",
            &["invalid type: floating point `1.5`, expected a filesystem right name, a number, or a list of them"],
        ),
        case(
            "rights: unknown scope bit",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"scoped": [4]}]}"#,
            at(1, 36),
            "ruleset[0].scoped[0]",
            &["scope bits 0x4 are unknown to moat (it knows 0x3"],
        ),
        case(
            "abi: 2^64 - 1",
            "lc.json",
            r#"{"abi": 18446744073709551615, "ruleset": [{"scoped": ["signal"]}]}"#,
            at(1, 28),
            "abi",
            &["ABI version 18446744073709551615 is outside 1..=2147483647"],
        ),
        case(
            "version: 2^32",
            "p.toml",
            "version = 4294967296\n",
            at(1, 11),
            "version",
            &["policy format version 4294967296 is not supported"],
        ),
    ]);
}

// ----------------------------------------------------------------------------------------
// moat's own dialect, in TOML, JSON and YAML.

#[test]
fn moat_dialect_messages() {
    run(&[
        // Values the dialect refuses.
        case(
            "moat: unsupported version",
            "p.toml",
            "version = 2\n",
            at(1, 11),
            "version",
            &["policy format version 2 is not supported (this moat reads version 1)"],
        ),
        case(
            "moat: negative version (YAML)",
            "p.yaml",
            "description: x\nversion: -1\n",
            at(2, 10),
            "version",
            &["policy format version -1 is not supported"],
        ),
        case(
            "moat: version as text",
            "p.json",
            r#"{"version": "1"}"#,
            at(1, 15),
            "version",
            &["invalid type: string \"1\", expected a format version number (1)"],
        ),
        case(
            "moat: unknown compat mode",
            "p.toml",
            "compat = \"lenient\"\n",
            at(1, 10),
            "compat",
            &["unknown compat mode `lenient` (write \"strict\" or \"best-effort\")"],
        ),
        case(
            "moat: unknown compat mode (YAML)",
            "p.yaml",
            "version: 1\ncompat: lenient\n",
            at(2, 9),
            "compat",
            &["unknown compat mode `lenient`"],
        ),
        case(
            "moat: unknown preset",
            "p.toml",
            "presets = [\"default\", \"nope\"]\n",
            at(1, 23),
            "presets[1]",
            &["unknown preset `nope` (available: default, minimal, shell, network-client, web-server)"],
        ),
        case(
            "moat: unknown preset (YAML)",
            "p.yaml",
            "presets:\n  - default\n  - nope\n",
            at(3, 5),
            "presets[1]",
            &["unknown preset `nope`"],
        ),
        case(
            "moat: unknown preset (JSON)",
            "p.json",
            r#"{"presets": ["Default"]}"#,
            at(1, 22),
            "presets[0]",
            &["unknown preset `Default`"],
        ),
        case(
            "moat: empty path",
            "p.toml",
            "[filesystem]\nread = [\"\"]\n",
            at(2, 9),
            "filesystem.read[0]",
            &["empty path"],
        ),
        case(
            "moat: empty path in a path table",
            "p.toml",
            "[filesystem]\nwrite = [{ path = \"\" }]\n",
            at(2, 19),
            "filesystem.write[0].path",
            &["empty path"],
        ),
        case(
            "moat: relative path",
            "p.toml",
            "[filesystem]\nread_exec = [\"/usr\", \"bin\"]\n",
            at(2, 22),
            "filesystem.read_exec[1]",
            &["path `bin` is relative; write an absolute path or start with ${CWD}"],
        ),
        case(
            "moat: relative path in a path table (YAML)",
            "p.yaml",
            "filesystem:\n  read:\n    - path: /usr\n      optional: true\n    - path: usr\n",
            at(5, 13),
            "filesystem.read[1].path",
            &["path `usr` is relative"],
        ),
        case(
            "moat: relative rule path (YAML)",
            "p.yaml",
            "filesystem:\n  rule:\n    - paths: [./x]\n      rights: [read]\n",
            at(3, 15),
            "filesystem.rule[0].paths[0]",
            &["path `./x` is relative"],
        ),
        case(
            "moat: unknown filesystem right",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/x\"]\nrights = [\"read_file\", \"read_fil\"]\n",
            at(3, 24),
            "filesystem.rule[0].rights[1]",
            &["unknown filesystem right `read_fil` (known: execute,", "read_exec"],
        ),
        case(
            "moat: unknown network right",
            "p.json",
            r#"{"network": {"handled": ["bind_tcp", "listen"]}}"#,
            at(1, 45),
            "network.handled[1]",
            &["unknown network right `listen` (known: bind_tcp, connect_tcp, bind_udp, connect_send_udp, tcp, udp, bind, connect, connect_udp, all)"],
        ),
        case(
            "moat: negative network right",
            "p.yaml",
            "network:\n  handled: [-2]\n",
            at(2, 13),
            "network.handled[0]",
            &["network right value -2 is negative"],
        ),
        case(
            "moat: filesystem lifted and restricted",
            "p.toml",
            "[filesystem]\nunrestricted = true\nhandled = [\"read_file\"]\n",
            at(3, 1),
            "filesystem.handled",
            &["`filesystem.handled` restricts rights while `filesystem.unrestricted = true` lifts them all; keep one of the two"],
        ),
        case(
            "moat: network lifted and restricted (JSON)",
            "p.json",
            r#"{"network": {"handled": ["bind_tcp"], "unrestricted": true}}"#,
            at(1, 15),
            "network.handled",
            &["`network.handled` restricts rights while `network.unrestricted = true`"],
        ),
        case(
            "moat: missing rule paths",
            "p.toml",
            "[[filesystem.rule]]\nrights = [\"read\"]\n",
            at(1, 1),
            "filesystem.rule[0]",
            &["missing field `paths`"],
        ),
        case(
            "moat: missing rule rights",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\n",
            at(1, 1),
            "filesystem.rule[0]",
            &["missing field `rights`"],
        ),
        case(
            "moat: path table without path",
            "p.toml",
            "[filesystem]\nread = [{ optional = true }]\n",
            at(2, 9),
            "filesystem.read[0]",
            &["missing field `path`"],
        ),
        case(
            "moat: rule written as a list",
            "p.toml",
            "[filesystem]\nrule = [[\"/a\"]]\n",
            at(2, 9),
            "filesystem.rule[0]",
            &["invalid type: sequence, expected a filesystem rule (a table with `paths` and `rights`)"],
        ),
        // Unknown keys at every level.
        case(
            "moat unknown key: top level",
            "p.toml",
            "filesytem = {}\n",
            at(1, 1),
            "filesytem",
            &["unknown field `filesytem`, expected one of `version`, `description`, `compat`, `presets`, `filesystem`, `network`, `scopes`, `audit`, `env`"],
        ),
        case(
            "moat unknown key: filesystem",
            "p.json",
            r#"{"filesystem": {"reed": []}}"#,
            at(1, 22),
            "filesystem.reed",
            &["unknown field `reed`"],
        ),
        case(
            "moat unknown key: filesystem rule",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = [\"read\"]\nbogus = 1\n",
            at(4, 1),
            "filesystem.rule[0].bogus",
            &["unknown field `bogus`, expected one of `path`, `paths`, `access`, `rights`, `optional`"],
        ),
        case(
            "moat unknown key: path table",
            "p.toml",
            "[filesystem]\nread = [{ path = \"/a\", bogus = 1 }]\n",
            at(2, 9),
            "filesystem.read[0]",
            &["unknown field `bogus`, expected one of `path`, `optional`, `within`"],
        ),
        case(
            "moat unknown key: network",
            "p.yaml",
            "network:\n  connect: [443]\n",
            at(2, 3),
            "network.connect",
            &["unknown field `connect`"],
        ),
        case(
            "moat unknown key: scopes",
            "p.toml",
            "[scopes]\nptrace = true\n",
            at(2, 1),
            "scopes.ptrace",
            &["unknown field `ptrace`, expected `signal` or `abstract_unix_socket`"],
        ),
        case(
            "moat unknown key: audit",
            "p.toml",
            "[audit]\nlog = true\n",
            at(2, 1),
            "audit.log",
            &["unknown field `log`, expected one of `log_same_exec`, `log_new_exec`, `log_subdomains`"],
        ),
        case(
            "moat unknown key: env",
            "p.toml",
            "[env]\nunset = [\"A\"]\n",
            at(2, 1),
            "env.unset",
            &["unknown field `unset`, expected one of `clear`, `pass`, `set`"],
        ),
        // Wrong types at every level.
        case(
            "moat wrong type: document is text (YAML)",
            "p.yaml",
            "hello\n",
            at(1, 1),
            "",
            &["invalid type: string \"hello\", expected a moat policy (a table)"],
        ),
        case(
            "moat wrong type: description",
            "p.toml",
            "description = 5\n",
            at(1, 15),
            "description",
            &["invalid type: integer `5`, expected a string"],
        ),
        case(
            "moat wrong type: compat",
            "p.toml",
            "compat = 1\n",
            at(1, 10),
            "compat",
            &["invalid type: integer `1`, expected a string"],
        ),
        case(
            "moat wrong type: presets",
            "p.toml",
            "presets = \"default\"\n",
            at(1, 11),
            "presets",
            &["invalid type: string \"default\", expected a sequence"],
        ),
        case(
            "moat wrong type: preset name",
            "p.toml",
            "presets = [1]\n",
            at(1, 12),
            "presets[0]",
            &["invalid type: integer `1`, expected a string"],
        ),
        case(
            "moat wrong type: filesystem",
            "p.toml",
            "filesystem = 5\n",
            at(1, 14),
            "filesystem",
            &["invalid type: integer `5`, expected a table of filesystem settings"],
        ),
        case(
            "moat wrong type: filesystem.unrestricted",
            "p.toml",
            "[filesystem]\nunrestricted = \"yes\"\n",
            at(2, 16),
            "filesystem.unrestricted",
            &["invalid type: string \"yes\", expected a boolean"],
        ),
        case(
            "moat wrong type: filesystem.read",
            "p.toml",
            "[filesystem]\nread = \"/etc\"\n",
            at(2, 8),
            "filesystem.read",
            &["invalid type: string \"/etc\", expected a sequence"],
        ),
        case(
            "moat wrong type: path entry",
            "p.toml",
            "[filesystem]\nread = [5]\n",
            at(2, 9),
            "filesystem.read[0]",
            &["invalid type: integer `5`, expected a path, or a table with `path`, `optional` and `within`"],
        ),
        case(
            "moat wrong type: path table optional",
            "p.toml",
            "[filesystem]\nread = [{ path = \"/a\", optional = 1 }]\n",
            at(2, 35),
            "filesystem.read[0].optional",
            &["invalid type: integer `1`, expected a boolean"],
        ),
        case(
            "moat wrong type: rule list",
            "p.json",
            r#"{"filesystem": {"rule": 5}}"#,
            at(1, 25),
            "filesystem.rule",
            &["invalid type: integer `5`, expected a sequence"],
        ),
        case(
            "moat wrong type: rule",
            "p.json",
            r#"{"filesystem": {"rule": [5]}}"#,
            at(1, 26),
            "filesystem.rule[0]",
            &["invalid type: integer `5`, expected a filesystem rule (a table with `paths` and `rights`)"],
        ),
        case(
            "moat wrong type: rule paths",
            "p.toml",
            "[[filesystem.rule]]\npaths = true\nrights = [\"read\"]\n",
            at(2, 9),
            "filesystem.rule[0].paths",
            &["invalid type: boolean `true`, expected a value or a list of values"],
        ),
        case(
            "moat wrong type: rule rights",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = true\n",
            at(3, 10),
            "filesystem.rule[0].rights",
            &["invalid type: boolean `true`, expected a filesystem right name, a number, or a list of them"],
        ),
        case(
            "moat wrong type: rule optional",
            "p.toml",
            "[[filesystem.rule]]\npaths = [\"/a\"]\nrights = [\"read\"]\noptional = \"no\"\n",
            at(4, 12),
            "filesystem.rule[0].optional",
            &["invalid type: string \"no\", expected a boolean"],
        ),
        case(
            "moat wrong type: network",
            "p.yaml",
            "network: closed\n",
            at(1, 10),
            "network",
            &["invalid type: string \"closed\", expected a table of network settings"],
        ),
        case(
            "moat wrong type: network.allow_udp",
            "p.toml",
            "[network]\nallow_udp = 1\n",
            at(2, 13),
            "network.allow_udp",
            &["invalid type: integer `1`, expected a boolean"],
        ),
        case(
            "moat unknown enforcer: network.udp_ports_enforced_by",
            "p.toml",
            "[network]\nudp_ports_enforced_by = \"ebpf\"\n",
            at(2, 25),
            "network.udp_ports_enforced_by",
            &["unknown variant `ebpf`, expected `cgroup-bpf`"],
        ),
        case(
            "moat wrong type: port list",
            "p.toml",
            "[network]\nbind_tcp = 80\n",
            at(2, 12),
            "network.bind_tcp",
            &["invalid type: integer `80`, expected a sequence"],
        ),
        case(
            "moat wrong type: network.handled",
            "p.toml",
            "[network]\nhandled = { tcp = true }\n",
            at(2, 11),
            "network.handled",
            &["invalid type: map, expected a network right name, a number, or a list of them"],
        ),
        case(
            "moat wrong type: scopes",
            "p.toml",
            "scopes = 5\n",
            at(1, 10),
            "scopes",
            &["invalid type: integer `5`, expected a table of scopes"],
        ),
        case(
            "moat wrong type: scopes.signal",
            "p.toml",
            "[scopes]\nsignal = \"yes\"\n",
            at(2, 10),
            "scopes.signal",
            &["invalid type: string \"yes\", expected a boolean"],
        ),
        case(
            "moat wrong type: audit",
            "p.json",
            r#"{"audit": true}"#,
            at(1, 14),
            "audit",
            &["invalid type: boolean `true`, expected a table of audit flags"],
        ),
        case(
            "moat wrong type: audit flag",
            "p.toml",
            "[audit]\nlog_new_exec = 1\n",
            at(2, 16),
            "audit.log_new_exec",
            &["invalid type: integer `1`, expected a boolean"],
        ),
        case(
            "moat wrong type: env",
            "p.toml",
            "env = \"clear\"\n",
            at(1, 7),
            "env",
            &["invalid type: string \"clear\", expected a table of environment settings"],
        ),
        case(
            "moat wrong type: env.clear",
            "p.toml",
            "[env]\nclear = \"yes\"\n",
            at(2, 9),
            "env.clear",
            &["invalid type: string \"yes\", expected a boolean"],
        ),
        case(
            "moat wrong type: env.pass",
            "p.toml",
            "[env]\npass = \"PATH\"\n",
            at(2, 8),
            "env.pass",
            &["invalid type: string \"PATH\", expected a sequence"],
        ),
        case(
            "moat wrong type: env.set value",
            "p.toml",
            "[env]\nset = { LANG = 1 }\n",
            at(2, 16),
            "env.set.LANG",
            &["invalid type: integer `1`, expected a string"],
        ),
        // A list where a table belongs: serde's derive would read it as the table's fields
        // in order (`network = [true]` as `unrestricted = true`), so each is refused. TOML
        // has no list document; `env.set` and path tables are not derived but are tested too.
        case(
            "moat list for a table: document (JSON)",
            "p.json",
            "[]",
            at(1, 1),
            "",
            &["invalid type: sequence, expected a moat policy (a table)"],
        ),
        case(
            "moat list for a table: document (YAML)",
            "p.yaml",
            "- filesystem\n",
            at(1, 1),
            "",
            &["invalid type: sequence, expected a moat policy (a table)"],
        ),
        case(
            "moat list for a table: filesystem (TOML)",
            "p.toml",
            "filesystem = [true]\n",
            at(1, 14),
            "filesystem",
            &["invalid type: sequence, expected a table of filesystem settings"],
        ),
        case(
            "moat list for a table: filesystem (JSON)",
            "p.json",
            r#"{"filesystem": [true]}"#,
            at(1, 15),
            "filesystem",
            &["invalid type: sequence, expected a table of filesystem settings"],
        ),
        case(
            "moat list for a table: filesystem (YAML)",
            "p.yaml",
            "filesystem:\n  - true\n",
            at(2, 3),
            "filesystem",
            &["invalid type: sequence, expected a table of filesystem settings"],
        ),
        case(
            "moat list for a table: rule (TOML)",
            "p.toml",
            "[filesystem]\nrule = [[\"/\", \"write\"]]\n",
            at(2, 9),
            "filesystem.rule[0]",
            &["invalid type: sequence, expected a filesystem rule (a table with `paths` and `rights`)"],
        ),
        case(
            "moat list for a table: rule (JSON)",
            "p.json",
            r#"{"filesystem": {"rule": [["/", "write"]]}}"#,
            at(1, 25),
            "filesystem.rule[0]",
            &["invalid type: sequence, expected a filesystem rule (a table with `paths` and `rights`)"],
        ),
        case(
            "moat list for a table: rule (YAML)",
            "p.yaml",
            "filesystem:\n  rule:\n    - [/, write]\n",
            at(3, 7),
            "filesystem.rule[0]",
            &["invalid type: sequence, expected a filesystem rule (a table with `paths` and `rights`)"],
        ),
        case(
            "moat list for a table: network (TOML)",
            "p.toml",
            "network = [true]\n",
            at(1, 11),
            "network",
            &["invalid type: sequence, expected a table of network settings"],
        ),
        case(
            "moat list for a table: network (JSON)",
            "p.json",
            r#"{"network": [true]}"#,
            at(1, 12),
            "network",
            &["invalid type: sequence, expected a table of network settings"],
        ),
        case(
            "moat list for a table: network (YAML)",
            "p.yaml",
            "network: [true]\n",
            at(1, 10),
            "network",
            &["invalid type: sequence, expected a table of network settings"],
        ),
        case(
            "moat list for a table: scopes (TOML)",
            "p.toml",
            "scopes = [false, false]\n",
            at(1, 10),
            "scopes",
            &["invalid type: sequence, expected a table of scopes"],
        ),
        case(
            "moat list for a table: scopes (JSON)",
            "p.json",
            r#"{"scopes": [false, false]}"#,
            at(1, 11),
            "scopes",
            &["invalid type: sequence, expected a table of scopes"],
        ),
        case(
            "moat list for a table: scopes (YAML)",
            "p.yaml",
            "scopes: [false, false]\n",
            at(1, 9),
            "scopes",
            &["invalid type: sequence, expected a table of scopes"],
        ),
        case(
            "moat list for a table: audit (TOML)",
            "p.toml",
            "audit = [false, false, false]\n",
            at(1, 9),
            "audit",
            &["invalid type: sequence, expected a table of audit flags"],
        ),
        case(
            "moat list for a table: audit (JSON)",
            "p.json",
            r#"{"audit": [false, false, false]}"#,
            at(1, 10),
            "audit",
            &["invalid type: sequence, expected a table of audit flags"],
        ),
        case(
            "moat list for a table: audit (YAML)",
            "p.yaml",
            "audit: [false, false, false]\n",
            at(1, 8),
            "audit",
            &["invalid type: sequence, expected a table of audit flags"],
        ),
        case(
            "moat list for a table: env (TOML)",
            "p.toml",
            "env = [true]\n",
            at(1, 7),
            "env",
            &["invalid type: sequence, expected a table of environment settings"],
        ),
        case(
            "moat list for a table: env (JSON)",
            "p.json",
            r#"{"env": [true]}"#,
            at(1, 8),
            "env",
            &["invalid type: sequence, expected a table of environment settings"],
        ),
        case(
            "moat list for a table: env (YAML)",
            "p.yaml",
            "env: [true]\n",
            at(1, 6),
            "env",
            &["invalid type: sequence, expected a table of environment settings"],
        ),
        case(
            "moat list for a table: env.set (TOML)",
            "p.toml",
            "[env]\nset = [\"LANG=C\"]\n",
            at(2, 7),
            "env.set",
            &["invalid type: sequence, expected a map"],
        ),
        case(
            "moat list for a table: env.set (JSON)",
            "p.json",
            r#"{"env": {"set": ["LANG=C"]}}"#,
            at(1, 16),
            "env.set",
            &["invalid type: sequence, expected a map"],
        ),
        case(
            "moat list for a table: env.set (YAML)",
            "p.yaml",
            "env:\n  set: [LANG=C]\n",
            at(2, 8),
            "env.set",
            &["invalid type: sequence, expected a map"],
        ),
        case(
            "moat list for a table: path table (TOML)",
            "p.toml",
            "[filesystem]\nread = [[\"/a\", true]]\n",
            at(2, 9),
            "filesystem.read[0]",
            &["invalid type: sequence, expected a path, or a table with `path`, `optional` and `within`"],
        ),
        case(
            "moat list for a table: path table (JSON)",
            "p.json",
            r#"{"filesystem": {"read": [["/a", true]]}}"#,
            at(1, 26),
            "filesystem.read[0]",
            &["invalid type: sequence, expected a path, or a table with `path`, `optional` and `within`"],
        ),
        case(
            "moat list for a table: path table (YAML)",
            "p.yaml",
            "filesystem:\n  read:\n    - [/a, true]\n",
            at(3, 7),
            "filesystem.read[0]",
            &["invalid type: sequence, expected a path, or a table with `path`, `optional` and `within`"],
        ),
    ]);
}

// ----------------------------------------------------------------------------------------
// landlockconfig, in JSON (camelCase) and TOML (snake_case).

#[test]
fn landlockconfig_messages() {
    run(&[
        case(
            "lc: empty configuration (JSON)",
            "lc.json",
            r#"{"abi": 5}"#,
            at(1, 1),
            "",
            &["empty configuration: give at least one of `variable`, `ruleset`, `pathBeneath` or `netPort`"],
        ),
        case(
            "lc: empty configuration (TOML)",
            "lc.toml",
            "abi = 5\n",
            at(1, 1),
            "",
            &["empty configuration"],
        ),
        case(
            "lc: empty ruleset (JSON)",
            "lc.json",
            r#"{"abi": 1, "ruleset": [{}]}"#,
            at(1, 26),
            "ruleset[0]",
            &["empty ruleset: give handledAccessFs, handledAccessNet or scoped"],
        ),
        case(
            "lc: empty ruleset (TOML)",
            "lc.toml",
            "abi = 5\n[[ruleset]]\n",
            at(2, 1),
            "ruleset[0]",
            &["empty ruleset"],
        ),
        // ABI numbers and ABI groups.
        case(
            "lc: abi 0",
            "lc.json",
            r#"{"abi": 0, "ruleset": [{"scoped": ["signal"]}]}"#,
            at(1, 9),
            "abi",
            &["ABI version 0 is outside 1..=2147483647"],
        ),
        case(
            "lc: abi -1",
            "lc.toml",
            "abi = -1\n[[ruleset]]\nscoped = [\"signal\"]\n",
            at(1, 7),
            "abi",
            &["ABI version -1 is outside 1..=2147483647"],
        ),
        case(
            "lc: abi 2^31",
            "lc.json",
            r#"{"abi": 2147483648, "ruleset": [{"scoped": ["signal"]}]}"#,
            at(1, 18),
            "abi",
            &["ABI version 2147483648 is outside 1..=2147483647"],
        ),
        case(
            "lc: abi as a float",
            "lc.json",
            r#"{"abi": 5.0, "ruleset": [{"scoped": ["signal"]}]}"#,
            at(1, 11),
            "abi",
            &["invalid type: floating point `5.0`, expected a Landlock ABI version (an integer from 1 to 2147483647)"],
        ),
        case(
            "lc: abi as text",
            "lc.toml",
            "abi = \"5\"\n[[ruleset]]\nscoped = [\"signal\"]\n",
            at(1, 7),
            "abi",
            &["invalid type: string \"5\", expected a Landlock ABI version"],
        ),
        case(
            "lc: group without abi in a ruleset (filesystem)",
            "lc.json",
            r#"{"ruleset": [{"handledAccessFs": ["abi.all"]}]}"#,
            at(1, 36),
            "ruleset[0].handledAccessFs",
            &["`abi.all` depends on the ABI version, but the document declares no `abi` (add `abi = 10` at the top)"],
        ),
        case(
            "lc: group without abi in a ruleset (network)",
            "lc.json",
            r#"{"ruleset": [{"handledAccessNet": ["abi.all"]}]}"#,
            at(1, 37),
            "ruleset[0].handledAccessNet",
            &["`abi.all` depends on the ABI version"],
        ),
        case(
            "lc: group without abi in a ruleset (scopes, TOML)",
            "lc.toml",
            "[[ruleset]]\nscoped = [\"abi.all\"]\n",
            at(2, 12),
            "ruleset[0].scoped",
            &["`abi.all` depends on the ABI version"],
        ),
        case(
            "lc: group without abi in a path rule",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["abi.read_execute"], "parent": ["/usr"]}]}"#,
            at(1, 38),
            "pathBeneath[0].allowedAccess",
            &["`abi.read_execute` depends on the ABI version, but the document declares no `abi` (add `abi = 10` at the top, or write `v10.read_execute`)"],
        ),
        case(
            "lc: group without abi in a port rule (TOML)",
            "lc.toml",
            "[[net_port]]\nallowed_access = [\"abi.all\"]\nport = [80]\n",
            at(2, 20),
            "net_port[0].allowed_access",
            &["or write `v10.all`"],
        ),
        case(
            "lc: unknown group",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessFs": ["abi.bogus"]}]}"#,
            at(1, 55),
            "ruleset[0].handledAccessFs[0]",
            &["unknown filesystem right group `abi.bogus` (groups: abi.all, abi.read_execute, abi.read_write)"],
        ),
        case(
            "lc: filesystem-only group for network",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessNet": ["abi.read_write"]}]}"#,
            at(1, 61),
            "ruleset[0].handledAccessNet[0]",
            &["unknown network right group `abi.read_write` (groups: abi.all)"],
        ),
        case(
            "lc: filesystem-only group for scopes",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"scoped": ["abi.read_execute"]}]}"#,
            at(1, 53),
            "ruleset[0].scoped[0]",
            &["unknown scope group `abi.read_execute` (groups: abi.all)"],
        ),
        case(
            "lc: unknown group prefix",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessFs": ["x.all"]}]}"#,
            at(1, 51),
            "ruleset[0].handledAccessFs[0]",
            &["unknown filesystem right `x.all` (write `abi.all` or `vN.all`)"],
        ),
        case(
            "lc: versioned group without a number",
            "lc.toml",
            "[[ruleset]]\nhandled_access_fs = [\"v.read_write\"]\n",
            at(2, 22),
            "ruleset[0].handled_access_fs[0]",
            &["unknown filesystem right `v.read_write` (write `abi.read_write` or `vN.read_write`)"],
        ),
        case(
            "lc: versioned group with a huge number",
            "lc.json",
            r#"{"ruleset": [{"handledAccessFs": ["v99999999999.all"]}]}"#,
            at(1, 52),
            "ruleset[0].handledAccessFs[0]",
            &["unknown filesystem right `v99999999999.all`"],
        ),
        case(
            "lc: versioned group of ABI 0",
            "lc.json",
            r#"{"ruleset": [{"handledAccessFs": ["v0.all"]}]}"#,
            at(1, 42),
            "ruleset[0].handledAccessFs[0]",
            &["`v0.all` names ABI 0; moat knows ABI 1 to 10"],
        ),
        case(
            "lc: versioned group of a future ABI",
            "lc.json",
            r#"{"ruleset": [{"handledAccessFs": ["v11.all"]}]}"#,
            at(1, 43),
            "ruleset[0].handledAccessFs[0]",
            &["`v11.all` names ABI 11; moat knows ABI 1 to 10"],
        ),
        // Rights.
        case(
            "lc: unknown filesystem right",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["read_fil"], "parent": ["/a"]}]}"#,
            at(1, 46),
            "pathBeneath[0].allowedAccess[0]",
            &["unknown filesystem right `read_fil` (known: execute,", "; groups: abi.all, abi.read_execute, abi.read_write"],
        ),
        case(
            "lc: unknown network right (TOML)",
            "lc.toml",
            "[[net_port]]\nallowed_access = [\"tcp\"]\nport = [80]\n",
            at(2, 19),
            "net_port[0].allowed_access[0]",
            &["unknown network right `tcp` (known: bind_tcp, connect_tcp, bind_udp, connect_send_udp); groups: abi.all"],
        ),
        case(
            "lc: unknown scope",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"scoped": ["ptrace"]}]}"#,
            at(1, 43),
            "ruleset[0].scoped[0]",
            &["unknown scope `ptrace` (known: abstract_unix_socket, signal); groups: abi.all"],
        ),
        case(
            "lc: negative right",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessNet": [-1]}]}"#,
            at(1, 47),
            "ruleset[0].handledAccessNet[0]",
            &["network right value -1 is negative"],
        ),
        case(
            "lc: unknown right bits",
            "lc.toml",
            "[[ruleset]]\nhandled_access_fs = [1048576]\n",
            at(2, 22),
            "ruleset[0].handled_access_fs[0]",
            &["filesystem right bits 0x100000 are unknown to moat"],
        ),
        case(
            "lc: right as a float",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessFs": [1.5]}]}"#,
            at(1, 47),
            "ruleset[0].handledAccessFs[0]",
            &["invalid type: floating point `1.5`, expected a filesystem right name, an ABI group or a number"],
        ),
        // Variables and path templates.
        case(
            "lc: undefined variable",
            "lc.toml",
            "[[path_beneath]]\nallowed_access = [\"execute\"]\nparent = [\"/usr\", \"${nope}/x\"]\n",
            at(3, 20),
            "path_beneath[0].parent[1]",
            &["variable `nope` is not defined (define it in a `variable` entry; moat also provides HOME, CWD, TMPDIR, USER, UID, GID)"],
        ),
        case(
            "lc: unclosed variable reference",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": ["${x"]}]}"#,
            at(1, 64),
            "pathBeneath[0].parent[0]",
            &["unclosed variable reference in `${x`"],
        ),
        case(
            "lc: unclosed variable reference (YAML)",
            "lc.yaml",
            "abi: 5\npathBeneath:\n  - allowedAccess: [execute]\n    parent:\n      - /a\n      - ${x\n",
            at(6, 9),
            "pathBeneath[0].parent[1]",
            &["unclosed variable reference in `${x`"],
        ),
        case(
            "lc: empty variable reference",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": ["${}"]}]}"#,
            at(1, 64),
            "pathBeneath[0].parent[0]",
            &["in `${}`: empty variable name"],
        ),
        case(
            "lc: variable reference with a bad name",
            "lc.toml",
            "[[path_beneath]]\nallowed_access = [\"execute\"]\nparent = [\"/a/${my-dir}\"]\n",
            at(3, 11),
            "path_beneath[0].parent[0]",
            &["in `/a/${my-dir}`: variable name `my-dir` may hold only ASCII letters, digits and `_`"],
        ),
        case(
            "lc: escaped dollar makes a literal `${`",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": ["$${x}"]}]}"#,
            at(1, 66),
            "pathBeneath[0].parent[0]",
            &["`${x}` holds a literal `${`, which moat would read as a variable reference"],
        ),
        case(
            "lc: empty parent path",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": [""]}]}"#,
            at(1, 61),
            "pathBeneath[0].parent[0]",
            &["empty path"],
        ),
        case(
            "lc: empty variable name",
            "lc.json",
            r#"{"variable": [{"name": ""}]}"#,
            at(1, 25),
            "variable[0].name",
            &["empty variable name"],
        ),
        case(
            "lc: variable name starting with a digit (YAML)",
            "lc.yaml",
            "variable:\n  - name: ok\n    literal: [/a]\n  - name: 9x\n",
            at(4, 11),
            "variable[1].name",
            &["variable name `9x` must start with an ASCII letter"],
        ),
        case(
            "lc: variable name with a dash",
            "lc.toml",
            "[[variable]]\nname = \"a-b\"\nliteral = [\"/a\"]\n",
            at(2, 8),
            "variable[0].name",
            &["variable name `a-b` may hold only ASCII letters, digits and `_`"],
        ),
        case(
            "lc: literal holding `${`",
            "lc.json",
            r#"{"variable": [{"name": "a", "literal": ["${b}"]}]}"#,
            at(1, 46),
            "variable[0].literal[0]",
            &["`${b}` holds a literal `${`"],
        ),
        // Empty lists where landlockconfig forbids them.
        case(
            "lc empty list: variable",
            "lc.json",
            r#"{"variable": []}"#,
            at(1, 15),
            "variable",
            &["empty list: give at least one entry"],
        ),
        case(
            "lc empty list: literal",
            "lc.json",
            r#"{"variable": [{"name": "a", "literal": []}]}"#,
            at(1, 41),
            "variable[0].literal",
            &["empty list: give at least one entry"],
        ),
        case(
            "lc empty list: ruleset",
            "lc.json",
            r#"{"abi": 5, "ruleset": []}"#,
            at(1, 24),
            "ruleset",
            &["empty list: give at least one entry"],
        ),
        case(
            "lc empty list: handledAccessFs",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessFs": []}]}"#,
            at(1, 45),
            "ruleset[0].handledAccessFs",
            &["empty list: name at least one filesystem right"],
        ),
        case(
            "lc empty list: scoped",
            "lc.toml",
            "[[ruleset]]\nscoped = []\n",
            at(2, 10),
            "ruleset[0].scoped",
            &["empty list: name at least one scope"],
        ),
        case(
            "lc empty list: pathBeneath",
            "lc.json",
            r#"{"pathBeneath": []}"#,
            at(1, 18),
            "pathBeneath",
            &["empty list: give at least one entry"],
        ),
        case(
            "lc empty list: allowedAccess",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": [], "parent": ["/a"]}]}"#,
            at(1, 37),
            "pathBeneath[0].allowedAccess",
            &["empty list: name at least one filesystem right"],
        ),
        case(
            "lc empty list: parent",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": []}]}"#,
            at(1, 60),
            "pathBeneath[0].parent",
            &["empty list: give at least one entry"],
        ),
        case(
            "lc empty list: netPort",
            "lc.toml",
            "net_port = []\n",
            at(1, 12),
            "net_port",
            &["empty list: give at least one entry"],
        ),
        case(
            "lc empty list: port",
            "lc.json",
            r#"{"netPort": [{"allowedAccess": ["bind_tcp"], "port": []}]}"#,
            at(1, 55),
            "netPort[0].port",
            &["empty list: give at least one entry"],
        ),
        // Missing keys.
        case(
            "lc missing key: variable name",
            "lc.json",
            r#"{"variable": [{"literal": ["/a"]}]}"#,
            at(1, 33),
            "variable[0]",
            &["missing field `name`"],
        ),
        case(
            "lc missing key: allowedAccess",
            "lc.json",
            r#"{"pathBeneath": [{"parent": ["/a"]}]}"#,
            at(1, 35),
            "pathBeneath[0]",
            &["missing field `allowedAccess`"],
        ),
        case(
            "lc missing key: port",
            "lc.json",
            r#"{"netPort": [{"allowedAccess": ["bind_tcp"]}]}"#,
            at(1, 44),
            "netPort[0]",
            &["missing field `port`"],
        ),
        // Unknown keys at every level.
        case(
            "lc unknown key: top level",
            "lc.json",
            r#"{"abi": 5, "bogus": 1}"#,
            at(1, 18),
            "bogus",
            &["unknown field `bogus`, expected one of `abi`, `variable`, `ruleset`, `pathBeneath`, `path_beneath`, `netPort`, `net_port`"],
        ),
        case(
            "lc unknown key: variable",
            "lc.json",
            r#"{"variable": [{"name": "a", "x": 1}]}"#,
            at(1, 31),
            "variable[0].x",
            &["unknown field `x`, expected `name` or `literal`"],
        ),
        case(
            "lc unknown key: ruleset (TOML)",
            "lc.toml",
            "abi = 5\n[[ruleset]]\nhandled_access_fs = [\"execute\"]\nbogus = 1\n",
            at(4, 1),
            "ruleset[0].bogus",
            &["unknown field `bogus`, expected one of `handledAccessFs`, `handled_access_fs`, `handledAccessNet`, `handled_access_net`, `scoped`"],
        ),
        case(
            "lc unknown key: path rule (TOML)",
            "lc.toml",
            "[[path_beneath]]\nallowed_access = [\"execute\"]\nparents = [\"/usr\"]\n",
            at(3, 1),
            "path_beneath[0].parents",
            &["unknown field `parents`, expected one of `allowedAccess`, `allowed_access`, `parent`"],
        ),
        case(
            "lc unknown key: port rule",
            "lc.json",
            r#"{"netPort": [{"allowedAccess": ["bind_tcp"], "port": [80], "x": 1}]}"#,
            at(1, 62),
            "netPort[0].x",
            &["unknown field `x`, expected one of `allowedAccess`, `allowed_access`, `port`"],
        ),
        // Wrong types at every level.
        case(
            "lc wrong type: variable list",
            "lc.json",
            r#"{"variable": {"name": "a"}}"#,
            at(1, 13),
            "variable",
            &["invalid type: map, expected a non-empty list"],
        ),
        case(
            "lc wrong type: variable",
            "lc.json",
            r#"{"variable": ["a"]}"#,
            at(1, 17),
            "variable[0]",
            &["invalid type: string \"a\", expected a variable (a table with `name` and `literal`)"],
        ),
        case(
            "lc wrong type: variable name",
            "lc.toml",
            "[[variable]]\nname = 5\n",
            at(2, 8),
            "variable[0].name",
            &["invalid type: integer `5`, expected a string"],
        ),
        case(
            "lc wrong type: literal list",
            "lc.json",
            r#"{"variable": [{"name": "a", "literal": "/a"}]}"#,
            at(1, 43),
            "variable[0].literal",
            &["invalid type: string \"/a\", expected a non-empty list"],
        ),
        case(
            "lc wrong type: ruleset list",
            "lc.json",
            r#"{"abi": 5, "ruleset": 5}"#,
            at(1, 23),
            "ruleset",
            &["invalid type: integer `5`, expected a non-empty list"],
        ),
        case(
            "lc wrong type: ruleset",
            "lc.json",
            r#"{"abi": 5, "ruleset": [5]}"#,
            at(1, 24),
            "ruleset[0]",
            &["invalid type: integer `5`, expected a ruleset (a table of handled rights and scopes)"],
        ),
        case(
            "lc wrong type: handledAccessFs",
            "lc.json",
            r#"{"abi": 5, "ruleset": [{"handledAccessFs": "execute"}]}"#,
            at(1, 52),
            "ruleset[0].handledAccessFs",
            &["invalid type: string \"execute\", expected a list of filesystem right names, ABI groups or numbers"],
        ),
        case(
            "lc wrong type: right",
            "lc.toml",
            "[[ruleset]]\nscoped = [true]\n",
            at(2, 11),
            "ruleset[0].scoped[0]",
            &["invalid type: boolean `true`, expected a scope name, an ABI group or a number"],
        ),
        case(
            "lc wrong type: path rule",
            "lc.json",
            r#"{"pathBeneath": ["/usr"]}"#,
            at(1, 23),
            "pathBeneath[0]",
            &["invalid type: string \"/usr\", expected a path rule (a table of allowed access and parent paths)"],
        ),
        case(
            "lc wrong type: parent",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": "/etc"}]}"#,
            at(1, 64),
            "pathBeneath[0].parent",
            &["invalid type: string \"/etc\", expected a non-empty list"],
        ),
        case(
            "lc wrong type: parent path",
            "lc.json",
            r#"{"pathBeneath": [{"allowedAccess": ["execute"], "parent": [1]}]}"#,
            at(1, 60),
            "pathBeneath[0].parent[0]",
            &["invalid type: integer `1`, expected a string"],
        ),
        case(
            "lc wrong type: port rule",
            "lc.toml",
            "net_port = [80]\n",
            at(1, 13),
            "net_port[0]",
            &["invalid type: integer `80`, expected a port rule (a table of allowed access and ports)"],
        ),
        case(
            "lc wrong type: port",
            "lc.toml",
            "[[net_port]]\nallowed_access = [\"bind_tcp\"]\nport = [\"http\"]\n",
            at(3, 9),
            "net_port[0].port[0]",
            &["`http` is not a port or a port range"],
        ),
        case(
            "lc wrong type: port as a float",
            "lc.json",
            r#"{"netPort": [{"allowedAccess": ["bind_tcp"], "port": [80.0]}]}"#,
            at(1, 58),
            "netPort[0].port[0]",
            &["port 80.0 is written as a decimal number; write 80"],
        ),
        case(
            "lc: port out of range",
            "lc.json",
            r#"{"netPort": [{"allowedAccess": ["bind_tcp"], "port": [-1]}]}"#,
            at(1, 56),
            "netPort[0].port[0]",
            &["port -1 is outside 0..=65535"],
        ),
        // A list where a table belongs (the document itself: `direct_parsers_refuse_a_list`).
        case(
            "lc list for a table: variable (TOML)",
            "lc.toml",
            "variable = [[\"tmp\", [\"/\"]]]\n",
            at(1, 13),
            "variable[0]",
            &["invalid type: sequence, expected a variable (a table with `name` and `literal`)"],
        ),
        case(
            "lc list for a table: variable (JSON)",
            "lc.json",
            r#"{"variable": [["tmp", ["/"]]]}"#,
            at(1, 14),
            "variable[0]",
            &["invalid type: sequence, expected a variable (a table with `name` and `literal`)"],
        ),
        case(
            "lc list for a table: variable (YAML)",
            "lc.yaml",
            "variable:\n  - [tmp, [/]]\n",
            at(2, 5),
            "variable[0]",
            &["invalid type: sequence, expected a variable (a table with `name` and `literal`)"],
        ),
        case(
            "lc list for a table: ruleset (TOML)",
            "lc.toml",
            "ruleset = [[[\"execute\"]]]\n",
            at(1, 12),
            "ruleset[0]",
            &["invalid type: sequence, expected a ruleset (a table of handled rights and scopes)"],
        ),
        case(
            "lc list for a table: ruleset (JSON)",
            "lc.json",
            r#"{"ruleset": [[["execute"]]]}"#,
            at(1, 13),
            "ruleset[0]",
            &["invalid type: sequence, expected a ruleset (a table of handled rights and scopes)"],
        ),
        case(
            "lc list for a table: ruleset (YAML)",
            "lc.yaml",
            "ruleset:\n  - [[execute]]\n",
            at(2, 5),
            "ruleset[0]",
            &["invalid type: sequence, expected a ruleset (a table of handled rights and scopes)"],
        ),
        case(
            "lc list for a table: path rule (TOML)",
            "lc.toml",
            "path_beneath = [[[\"execute\"], [\"/\"]]]\n",
            at(1, 17),
            "path_beneath[0]",
            &["invalid type: sequence, expected a path rule (a table of allowed access and parent paths)"],
        ),
        case(
            "lc list for a table: path rule (JSON)",
            "lc.json",
            r#"{"pathBeneath": [[["execute"], ["/"]]]}"#,
            at(1, 17),
            "pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table of allowed access and parent paths)"],
        ),
        case(
            "lc list for a table: path rule (YAML)",
            "lc.yaml",
            "pathBeneath:\n  - [[execute], [/]]\n",
            at(2, 5),
            "pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table of allowed access and parent paths)"],
        ),
        case(
            "lc list for a table: port rule (TOML)",
            "lc.toml",
            "net_port = [[[\"bind_tcp\"], [80]]]\n",
            at(1, 13),
            "net_port[0]",
            &["invalid type: sequence, expected a port rule (a table of allowed access and ports)"],
        ),
        case(
            "lc list for a table: port rule (JSON)",
            "lc.json",
            r#"{"netPort": [[["bind_tcp"], [80]]]}"#,
            at(1, 13),
            "netPort[0]",
            &["invalid type: sequence, expected a port rule (a table of allowed access and ports)"],
        ),
        case(
            "lc list for a table: port rule (YAML)",
            "lc.yaml",
            "netPort:\n  - [[bind_tcp], [80]]\n",
            at(2, 5),
            "netPort[0]",
            &["invalid type: sequence, expected a port rule (a table of allowed access and ports)"],
        ),
    ]);
}

// ----------------------------------------------------------------------------------------
// OCI `process.landlock`: #1241, #1111, and a whole config.json.

#[test]
fn oci_messages() {
    run(&[
        // #1241.
        case(
            "1241: rule grants an unhandled filesystem right",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": ["execute"]}, "rules": {"pathBeneath": [{"allowedAccess": ["execute", "write_file"], "paths": ["/a"]}]}}"#,
            at(1, 110),
            "rules.pathBeneath[0].allowedAccess",
            &["grants write_file, which `handledAccess.handledAccessFS` does not handle; the kernel refuses a rule for unhandled rights (add them to `handledAccess.handledAccessFS` or remove them here)"],
        ),
        case(
            "1241: rule grants an unhandled network right",
            "o.json",
            r#"{"handledAccess": {"handledAccessNetwork": ["bind"]}, "rules": {"networkPort": [{"allowedAccess": ["connect"], "ports": [80]}]}}"#,
            at(1, 82),
            "rules.networkPort[0].allowedAccess",
            &["grants connect_tcp, which `handledAccess.handledAccessNetwork` does not handle"],
        ),
        case(
            "1241: unknown network right",
            "o.json",
            r#"{"handledAccess": {"handledAccessNetwork": ["bind", "listen"]}}"#,
            at(1, 60),
            "handledAccess.handledAccessNetwork[1]",
            &["unknown network right `listen` (known: bind_tcp, connect_tcp, bind_udp, connect_send_udp, bind, connect)"],
        ),
        case(
            "1241: unknown filesystem right (moat groups are not OCI names)",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": ["read"]}}"#,
            at(1, 45),
            "handledAccess.handledAccessFS[0]",
            &["unknown filesystem right `read` (known: execute, write_file, read_file,", "resolve_unix)"],
        ),
        case(
            "1241: negative right",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": [-1]}}"#,
            at(1, 41),
            "handledAccess.handledAccessFS[0]",
            &["filesystem right value -1 is negative"],
        ),
        case(
            "1241: unknown right bits",
            "o.json",
            r#"{"handledAccess": {"handledAccessNetwork": [16]}}"#,
            at(1, 46),
            "handledAccess.handledAccessNetwork[0]",
            &["network right bits 0x10 are unknown to moat"],
        ),
        case(
            "1241: relative path",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": ["execute"]}, "rules": {"pathBeneath": [{"allowedAccess": ["execute"], "paths": ["rel"]}]}}"#,
            at(1, 124),
            "rules.pathBeneath[0].paths[0]",
            &["path `rel` is relative; write an absolute path or start with ${CWD}"],
        ),
        case(
            "1241: relative path (YAML)",
            "o.yaml",
            "handledAccess:\n  handledAccessFS: [execute]\nrules:\n  pathBeneath:\n    - allowedAccess: [execute]\n      paths:\n        - /a\n        - rel\n",
            at(8, 11),
            "rules.pathBeneath[0].paths[1]",
            &["path `rel` is relative"],
        ),
        case(
            "1241: empty path",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": ["execute"]}, "rules": {"pathBeneath": [{"allowedAccess": ["execute"], "paths": [""]}]}}"#,
            at(1, 121),
            "rules.pathBeneath[0].paths[0]",
            &["empty path"],
        ),
        case(
            "1241: port out of range",
            "o.json",
            r#"{"handledAccess": {"handledAccessNetwork": ["bind"]}, "rules": {"networkPort": [{"allowedAccess": ["bind"], "ports": [65536]}]}}"#,
            at(1, 123),
            "rules.networkPort[0].ports[0]",
            &["port 65536 is outside 0..=65535"],
        ),
        case(
            "1241 unknown key: top level",
            "o.json",
            r#"{"handledAccess": {}, "bogus": 1}"#,
            at(1, 29),
            "bogus",
            &["unknown field `bogus`, expected one of `handledAccess`, `rules`, `enableBestEffort`"],
        ),
        case(
            "1241 unknown key: handledAccess",
            "o.json",
            r#"{"handledAccess": {"handledAccessFs": ["execute"]}}"#,
            at(1, 36),
            "handledAccess.handledAccessFs",
            &["unknown field `handledAccessFs`, expected `handledAccessFS` or `handledAccessNetwork`"],
        ),
        case(
            "1241 unknown key: rules",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"netPort": []}}"#,
            at(1, 41),
            "rules.netPort",
            &["unknown field `netPort`, expected `pathBeneath` or `networkPort`"],
        ),
        case(
            "1241 unknown key: path rule",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"pathBeneath": [{"path": ["/a"]}]}}"#,
            at(1, 55),
            "rules.pathBeneath[0].path",
            &["unknown field `path`, expected `allowedAccess` or `paths`"],
        ),
        case(
            "1241 unknown key: port rule",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"networkPort": [{"port": [80]}]}}"#,
            at(1, 55),
            "rules.networkPort[0].port",
            &["unknown field `port`, expected `allowedAccess` or `ports`"],
        ),
        case(
            "1241 wrong type: handledAccess",
            "o.json",
            r#"{"handledAccess": 5}"#,
            at(1, 19),
            "handledAccess",
            &["invalid type: integer `5`, expected a table of handled rights"],
        ),
        case(
            "1241 wrong type: handledAccessFS",
            "o.json",
            r#"{"handledAccess": {"handledAccessFS": true}}"#,
            at(1, 42),
            "handledAccess.handledAccessFS",
            &["invalid type: boolean `true`, expected a filesystem right name, a number, or a list of them"],
        ),
        case(
            "1241 wrong type: rules",
            "o.json",
            r#"{"handledAccess": {}, "rules": "none"}"#,
            at(1, 37),
            "rules",
            &["invalid type: string \"none\", expected a table of rules"],
        ),
        case(
            "1241 wrong type: pathBeneath",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"pathBeneath": {}}}"#,
            at(1, 47),
            "rules.pathBeneath",
            &["invalid type: map, expected a sequence"],
        ),
        case(
            "1241 wrong type: path rule",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"pathBeneath": ["/a"]}}"#,
            at(1, 52),
            "rules.pathBeneath[0]",
            &["invalid type: string \"/a\", expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "1241 wrong type: paths",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"pathBeneath": [{"paths": "/a"}]}}"#,
            at(1, 62),
            "rules.pathBeneath[0].paths",
            &["invalid type: string \"/a\", expected a sequence"],
        ),
        case(
            "1241 wrong type: port rule",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"networkPort": [80]}}"#,
            at(1, 50),
            "rules.networkPort[0]",
            &["invalid type: integer `80`, expected a port rule (a table with `allowedAccess` and `ports`)"],
        ),
        case(
            "1241 wrong type: ports",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"networkPort": [{"ports": "80"}]}}"#,
            at(1, 62),
            "rules.networkPort[0].ports",
            &["invalid type: string \"80\", expected a sequence"],
        ),
        case(
            "1241 wrong type: enableBestEffort",
            "o.json",
            r#"{"handledAccess": {}, "enableBestEffort": 1}"#,
            at(1, 43),
            "enableBestEffort",
            &["invalid type: integer `1`, expected a boolean"],
        ),
        // #1111.
        case(
            "1111: rule grants an unhandled right",
            "o.json",
            r#"{"ruleset": {"handledAccessFS": ["execute"]}, "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/a"]}]}}"#,
            at(1, 93),
            "rules.pathBeneath[0].allowedAccess",
            &["grants read_file, which `ruleset.handledAccessFS` does not handle"],
        ),
        case(
            "1111: no network in the ruleset",
            "o.json",
            r#"{"ruleset": {"handledAccessFS": ["execute"], "handledAccessNetwork": ["bind"]}}"#,
            at(1, 67),
            "ruleset.handledAccessNetwork",
            &["unknown field `handledAccessNetwork`, expected `handledAccessFS`"],
        ),
        case(
            "1111: no network rules",
            "o.json",
            r#"{"ruleset": {"handledAccessFS": ["execute"]}, "rules": {"networkPort": []}}"#,
            at(1, 69),
            "rules.networkPort",
            &["unknown field `networkPort`, expected `pathBeneath`"],
        ),
        case(
            "1111 unknown key: top level",
            "o.json",
            r#"{"ruleset": {"handledAccessFS": ["execute"]}, "bogus": 1}"#,
            at(1, 53),
            "bogus",
            &["unknown field `bogus`, expected one of `ruleset`, `rules`, `disableBestEffort`"],
        ),
        case(
            "1111 unknown key: path rule",
            "o.json",
            r#"{"ruleset": {"handledAccessFS": ["execute"]}, "rules": {"pathBeneath": [{"allowedAccess": ["execute"], "paths": ["/a"], "x": 1}]}}"#,
            at(1, 123),
            "rules.pathBeneath[0].x",
            &["unknown field `x`, expected `allowedAccess` or `paths`"],
        ),
        case(
            "1111 wrong type: ruleset",
            "o.json",
            r#"{"ruleset": 5, "disableBestEffort": true}"#,
            at(1, 13),
            "ruleset",
            &["invalid type: integer `5`, expected a ruleset (a table of handled rights)"],
        ),
        case(
            "1111 wrong type: rules",
            "o.json",
            r#"{"ruleset": {}, "rules": 5}"#,
            at(1, 26),
            "rules",
            &["invalid type: integer `5`, expected a table of rules"],
        ),
        case(
            "1111 wrong type: disableBestEffort",
            "o.json",
            r#"{"disableBestEffort": "yes"}"#,
            at(1, 27),
            "disableBestEffort",
            &["invalid type: string \"yes\", expected a boolean"],
        ),
        // A whole config.json.
        case(
            "config.json: no process.landlock",
            "config.json",
            "{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": {\"args\": [\"sh\"]}\n}",
            at(3, 3),
            "process.landlock",
            &["this config.json has no `process.landlock` object, so it holds no Landlock policy"],
        ),
        case(
            "config.json: no process at all",
            "config.json",
            r#"{"ociVersion": "1.2.0"}"#,
            at(1, 1),
            "process.landlock",
            &["no `process.landlock` object"],
        ),
        case(
            "config.json: no process.landlock (YAML)",
            "config.yaml",
            "ociVersion: '1.2.0'\nprocess:\n  args: [sh]\n",
            at(1, 1),
            "process.landlock",
            &["no `process.landlock` object"],
        ),
        case(
            "config.json wrong type: process",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": 5}"#,
            at(1, 36),
            "process",
            &["invalid type: integer `5`, expected an OCI process (a table)"],
        ),
        case(
            "config.json wrong type: landlock",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": {"landlock": 5}}"#,
            at(1, 49),
            "process.landlock",
            &["invalid type: integer `5`, expected a Landlock policy (a table)"],
        ),
        case(
            "config.json: unknown key in landlock",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": {"landlock": {"handledAccess": {"bogus": 1}}}}"#,
            at(1, 74),
            "process.landlock.handledAccess.bogus",
            &["unknown field `bogus`"],
        ),
        case(
            "config.json: unhandled right (1241)",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": {"landlock": {"handledAccess": {"handledAccessNetwork": ["bind"]}, "rules": {"networkPort": [{"allowedAccess": ["bind", "connect"], "ports": [80]}]}}}}"#,
            at(1, 130),
            "process.landlock.rules.networkPort[0].allowedAccess",
            &["grants connect_tcp, which `handledAccess.handledAccessNetwork` does not handle"],
        ),
        case(
            "config.json: unknown right (1111)",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": {"landlock": {"ruleset": {"handledAccessFS": ["exec"]}}}}"#,
            at(1, 87),
            "process.landlock.ruleset.handledAccessFS[0]",
            &["unknown filesystem right `exec`"],
        ),
        case(
            "config.json: unknown right (YAML)",
            "config.yaml",
            "ociVersion: '1.2.0'\nprocess:\n  landlock:\n    handledAccess:\n      handledAccessFS: [exec]\n",
            at(5, 25),
            "process.landlock.handledAccess.handledAccessFS[0]",
            &["unknown filesystem right `exec`"],
        ),
        // A list where a table belongs (the document itself: `direct_parsers_refuse_a_list`).
        case(
            "1241 list for a table: handledAccess (TOML)",
            "o.toml",
            "handledAccess = []\n",
            at(1, 17),
            "handledAccess",
            &["invalid type: sequence, expected a table of handled rights"],
        ),
        case(
            "1241 list for a table: handledAccess (JSON)",
            "o.json",
            r#"{"handledAccess": []}"#,
            at(1, 18),
            "handledAccess",
            &["invalid type: sequence, expected a table of handled rights"],
        ),
        case(
            "1241 list for a table: handledAccess (YAML)",
            "o.yaml",
            "handledAccess: []\n",
            at(1, 16),
            "handledAccess",
            &["invalid type: sequence, expected a table of handled rights"],
        ),
        case(
            "1241 list for a table: rules (TOML)",
            "o.toml",
            "handledAccess = {}\nrules = [[]]\n",
            at(2, 9),
            "rules",
            &["invalid type: sequence, expected a table of rules"],
        ),
        case(
            "1241 list for a table: rules (JSON)",
            "o.json",
            r#"{"handledAccess": {}, "rules": [[]]}"#,
            at(1, 31),
            "rules",
            &["invalid type: sequence, expected a table of rules"],
        ),
        case(
            "1241 list for a table: rules (YAML)",
            "o.yaml",
            "handledAccess: {}\nrules: [[]]\n",
            at(2, 8),
            "rules",
            &["invalid type: sequence, expected a table of rules"],
        ),
        case(
            "1241 list for a table: path rule (TOML)",
            "o.toml",
            "handledAccess = {}\nrules = { pathBeneath = [[[\"execute\"], [\"/\"]]] }\n",
            at(2, 26),
            "rules.pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "1241 list for a table: path rule (JSON)",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"pathBeneath": [[["execute"], ["/"]]]}}"#,
            at(1, 48),
            "rules.pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "1241 list for a table: path rule (YAML)",
            "o.yaml",
            "handledAccess: {}\nrules:\n  pathBeneath:\n    - [[execute], [/]]\n",
            at(4, 7),
            "rules.pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "1241 list for a table: port rule (TOML)",
            "o.toml",
            "handledAccess = {}\nrules = { networkPort = [[[\"bind\"], [80]]] }\n",
            at(2, 26),
            "rules.networkPort[0]",
            &["invalid type: sequence, expected a port rule (a table with `allowedAccess` and `ports`)"],
        ),
        case(
            "1241 list for a table: port rule (JSON)",
            "o.json",
            r#"{"handledAccess": {}, "rules": {"networkPort": [[["bind"], [80]]]}}"#,
            at(1, 48),
            "rules.networkPort[0]",
            &["invalid type: sequence, expected a port rule (a table with `allowedAccess` and `ports`)"],
        ),
        case(
            "1241 list for a table: port rule (YAML)",
            "o.yaml",
            "handledAccess: {}\nrules:\n  networkPort:\n    - [[bind], [80]]\n",
            at(4, 7),
            "rules.networkPort[0]",
            &["invalid type: sequence, expected a port rule (a table with `allowedAccess` and `ports`)"],
        ),
        case(
            "1111 list for a table: ruleset (TOML)",
            "o.toml",
            "ruleset = [[]]\ndisableBestEffort = true\n",
            at(1, 11),
            "ruleset",
            &["invalid type: sequence, expected a ruleset (a table of handled rights)"],
        ),
        case(
            "1111 list for a table: ruleset (JSON)",
            "o.json",
            r#"{"ruleset": [[]], "disableBestEffort": true}"#,
            at(1, 12),
            "ruleset",
            &["invalid type: sequence, expected a ruleset (a table of handled rights)"],
        ),
        case(
            "1111 list for a table: ruleset (YAML)",
            "o.yaml",
            "ruleset: [[]]\ndisableBestEffort: true\n",
            at(1, 10),
            "ruleset",
            &["invalid type: sequence, expected a ruleset (a table of handled rights)"],
        ),
        case(
            "1111 list for a table: rules (TOML)",
            "o.toml",
            "ruleset = {}\nrules = [[]]\n",
            at(2, 9),
            "rules",
            &["invalid type: sequence, expected a table of rules"],
        ),
        case(
            "1111 list for a table: rules (JSON)",
            "o.json",
            r#"{"ruleset": {}, "rules": [[]]}"#,
            at(1, 25),
            "rules",
            &["invalid type: sequence, expected a table of rules"],
        ),
        case(
            "1111 list for a table: rules (YAML)",
            "o.yaml",
            "ruleset: {}\nrules: [[]]\n",
            at(2, 8),
            "rules",
            &["invalid type: sequence, expected a table of rules"],
        ),
        case(
            "1111 list for a table: path rule (TOML)",
            "o.toml",
            "ruleset = {}\nrules = { pathBeneath = [[[\"execute\"], [\"/\"]]] }\n",
            at(2, 26),
            "rules.pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "1111 list for a table: path rule (JSON)",
            "o.json",
            r#"{"ruleset": {}, "rules": {"pathBeneath": [[["execute"], ["/"]]]}}"#,
            at(1, 42),
            "rules.pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "1111 list for a table: path rule (YAML)",
            "o.yaml",
            "ruleset: {}\nrules:\n  pathBeneath:\n    - [[execute], [/]]\n",
            at(4, 7),
            "rules.pathBeneath[0]",
            &["invalid type: sequence, expected a path rule (a table with `allowedAccess` and `paths`)"],
        ),
        case(
            "config.json list for a table: process (TOML)",
            "config.toml",
            "ociVersion = \"1.2.0\"\nprocess = [{}]\n",
            at(2, 11),
            "process",
            &["invalid type: sequence, expected an OCI process (a table)"],
        ),
        case(
            "config.json list for a table: process (JSON)",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": [{}]}"#,
            at(1, 35),
            "process",
            &["invalid type: sequence, expected an OCI process (a table)"],
        ),
        case(
            "config.json list for a table: process (YAML)",
            "config.yaml",
            "ociVersion: '1.2.0'\nprocess: [{}]\n",
            at(2, 10),
            "process",
            &["invalid type: sequence, expected an OCI process (a table)"],
        ),
        case(
            "config.json list for a table: landlock (TOML)",
            "config.toml",
            "ociVersion = \"1.2.0\"\n[process]\nlandlock = []\n",
            at(3, 12),
            "process.landlock",
            &["invalid type: sequence, expected a Landlock policy (a table)"],
        ),
        case(
            "config.json list for a table: landlock (JSON)",
            "config.json",
            r#"{"ociVersion": "1.2.0", "process": {"landlock": []}}"#,
            at(1, 48),
            "process.landlock",
            &["invalid type: sequence, expected a Landlock policy (a table)"],
        ),
        case(
            "config.json list for a table: landlock (YAML)",
            "config.yaml",
            "ociVersion: '1.2.0'\nprocess:\n  landlock: []\n",
            at(3, 13),
            "process.landlock",
            &["invalid type: sequence, expected a Landlock policy (a table)"],
        ),
    ]);
}

/// A document that is a list is moat's dialect to `parse_str` (dialects are told apart by
/// the keys of an object); each dialect's own parser refuses one too.
#[test]
fn direct_parsers_refuse_a_list() {
    fn lc(name: &str, text: &str) -> Result<Policy, PolicyError> {
        landlockconfig::parse(&Document::new(name, text))
    }
    fn pr1241(name: &str, text: &str) -> Result<Policy, PolicyError> {
        oci::parse(&Document::new(name, text), Dialect::OciPr1241)
    }
    fn pr1111(name: &str, text: &str) -> Result<Policy, PolicyError> {
        oci::parse(&Document::new(name, text), Dialect::OciPr1111)
    }
    let lc_doc = &["invalid type: sequence, expected a landlockconfig document (a table)"];
    let oci_doc = &["invalid type: sequence, expected a Landlock policy (a table)"];
    run_with(
        &[
            case(
                "lc: list document (JSON)",
                "lc.json",
                r#"[{"abi": 5}]"#,
                at(1, 1),
                "",
                lc_doc,
            ),
            case(
                "lc: list document (YAML)",
                "lc.yaml",
                "- abi: 5\n",
                at(1, 1),
                "",
                lc_doc,
            ),
        ],
        lc,
    );
    run_with(
        &[
            case(
                "1241: list document (JSON)",
                "o.json",
                "[]",
                at(1, 1),
                "",
                oci_doc,
            ),
            case(
                "1241: list document (YAML)",
                "o.yaml",
                "- {}\n",
                at(1, 1),
                "",
                oci_doc,
            ),
        ],
        pr1241,
    );
    run_with(
        &[
            case(
                "1111: list document (JSON)",
                "o.json",
                "[]",
                at(1, 1),
                "",
                oci_doc,
            ),
            case(
                "1111: list document (YAML)",
                "o.yaml",
                "- {}\n",
                at(1, 1),
                "",
                oci_doc,
            ),
        ],
        pr1111,
    );
}

// ----------------------------------------------------------------------------------------
// Files: what `load_file` adds (reading, size) to the messages above.

/// A fresh directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("errors-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[test]
fn load_file_messages() {
    let dir = scratch("load_file");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    };
    let big = dir.join("big.toml");
    let f = std::fs::File::create(&big).unwrap_or_else(|e| panic!("{}: {e}", big.display()));
    // A sparse file: its size is what is refused, before anything is read.
    f.set_len(MAX_DOCUMENT_BYTES as u64 + 1)
        .unwrap_or_else(|e| panic!("{}: {e}", big.display()));
    drop(f);
    let over = MAX_DOCUMENT_BYTES + 1;

    // (name, path, is a read error, the message must start with, ... and hold)
    let rows: Vec<(&str, PathBuf, bool, String, String)> = vec![
        (
            "file: missing",
            dir.join("missing.toml"),
            true,
            format!(
                "{}: cannot read policy file: ",
                dir.join("missing.toml").display()
            ),
            "No such file or directory".to_string(),
        ),
        (
            "file: a directory",
            dir.clone(),
            true,
            format!("{}: cannot read policy file: ", dir.display()),
            "Is a directory".to_string(),
        ),
        (
            "file: not UTF-8",
            write("latin1.toml", b"description = \"caf\xe9\"\n"),
            true,
            format!(
                "{}: cannot read policy file: ",
                dir.join("latin1.toml").display()
            ),
            "stream did not contain valid UTF-8".to_string(),
        ),
        (
            "file: too big",
            big.clone(),
            false,
            format!("{}: ", big.display()),
            format!("file is {over} bytes; policies are limited to {MAX_DOCUMENT_BYTES} bytes"),
        ),
        (
            "file: syntax error names the path",
            write("broken.toml", b"[filesystem\n"),
            false,
            format!("{}:1:12: ", dir.join("broken.toml").display()),
            "invalid table header".to_string(),
        ),
        (
            "file: dialect error names the path",
            write(
                "lc.json",
                b"{\n  \"abi\": 0,\n  \"ruleset\": [{\"scoped\": [\"signal\"]}]\n}\n",
            ),
            false,
            format!("{}:2:10: `abi`: ", dir.join("lc.json").display()),
            "ABI version 0 is outside 1..=2147483647".to_string(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, path, is_read, starts, holds) in &rows {
        let shown = match load_file(path) {
            Ok(p) => {
                failures.push(format!(
                    "case `{name}`\n  input: {}\n  parsed: {p:?}",
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                if matches!(e, PolicyError::Read { .. }) != *is_read {
                    failures.push(format!(
                        "case `{name}`\n  input: {}\n  wrong kind: {e:?}",
                        path.display()
                    ));
                }
                e.to_string()
            }
        };
        if !shown.starts_with(starts.as_str()) || !shown.contains(holds.as_str()) {
            failures.push(format!(
                "case `{name}`\n  input: {}\n  expected {starts:?} ... {holds:?}\n  actual: {shown}",
                path.display()
            ));
        }
    }
    report(rows.len(), failures);
}

/// A document of exactly the limit is not refused for its size.
#[test]
fn the_size_limit_is_inclusive() {
    let text = format!("#{}\n", "x".repeat(MAX_DOCUMENT_BYTES - 2));
    assert_eq!(text.len(), MAX_DOCUMENT_BYTES);
    parse_str("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));

    let text = format!("{text} ");
    let e = parse_str("p.toml", &text).map(|_| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "p.toml: document is {} bytes; policies are limited to {MAX_DOCUMENT_BYTES} bytes",
            MAX_DOCUMENT_BYTES + 1
        )
    );
    // A document without an extension is not parsed as TOML to guess its format when it
    // is over the limit anyway (the guess would cost what the limit is there to bound).
    let toml = format!("x\n{}", "[[x]]\n".repeat(MAX_DOCUMENT_BYTES / 6 + 1));
    assert_eq!(Format::sniff(&toml), Format::Yaml);
    assert_eq!(Format::sniff("[[x]]\n"), Format::Toml);
}

// ----------------------------------------------------------------------------------------
// Variables, expanded after parsing (moat paths keep `${NAME}` until launch).

#[test]
fn variable_messages() {
    let mut one = Vars::new();
    one.set("A", "/x");
    let process = Vars::from_process();
    let none = Vars::new();
    // (name, variables, path, is undefined (else: malformed), the whole message or a part)
    let rows: Vec<(&str, &Vars, &str, bool, &str)> = vec![
        (
            "vars: unterminated `${`",
            &none,
            "/a/${HOME",
            false,
            "p.toml: filesystem.read: unterminated `${` in `/a/${HOME`",
        ),
        (
            "vars: unterminated after a good one",
            &one,
            "${A}/${A",
            false,
            "p.toml: filesystem.read: unterminated `${` in `${A}/${A`",
        ),
        (
            "vars: undefined, none known",
            &none,
            "${CWD}/x",
            true,
            "p.toml: filesystem.read: `${CWD}` in `${CWD}/x` is not a known variable (known: none)",
        ),
        (
            "vars: undefined, some known",
            &one,
            "/a/${B}/${A}",
            true,
            "p.toml: filesystem.read: `${B}` in `/a/${B}/${A}` is not a known variable (known: A)",
        ),
        (
            "vars: empty name",
            &one,
            "/a/${}",
            true,
            "p.toml: filesystem.read: `${}` in `/a/${}` is not a known variable (known: A)",
        ),
        (
            "vars: undefined among the built-ins",
            &process,
            "${NOPE}/x",
            true,
            "is not a known variable (known: CWD",
        ),
    ];
    let mut failures = Vec::new();
    for (name, vars, path, undefined, says) in &rows {
        match vars.expand(path, "p.toml: filesystem.read") {
            Ok(v) => failures.push(format!(
                "case `{name}`\n  input: {path:?}\n  expanded: {v:?}"
            )),
            Err(e) => {
                let kind_ok = match e {
                    PolicyError::UndefinedVariable { .. } => *undefined,
                    PolicyError::Invalid { .. } => !*undefined,
                    _ => false,
                };
                let shown = e.to_string();
                if !kind_ok || !shown.contains(says) {
                    failures.push(format!(
                        "case `{name}`\n  input: {path:?}\n  expected {says:?}\n  actual: {shown} ({e:?})"
                    ));
                }
            }
        }
    }
    report(rows.len(), failures);
}

// ----------------------------------------------------------------------------------------
// Presets and command-line ports, which have messages of their own.

#[test]
fn preset_messages() {
    let e = moat_policy::presets::load("nope").map(|_| ()).unwrap_err();
    assert!(matches!(e, PolicyError::UnknownPreset { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "unknown preset `nope` (available: default, minimal, shell, network-client, web-server)"
    );
    let e = moat_policy::presets::text("").map(|_| ()).unwrap_err();
    assert!(
        e.to_string().starts_with("unknown preset `` (available: "),
        "{e}"
    );
}

/// The depth limit of presets including presets cannot be reached: see the file comment.
#[test]
fn shipped_presets_nest_within_the_limit() {
    let names: Vec<&str> = moat_policy::presets::PRESETS
        .iter()
        .map(|p| p.name)
        .collect();
    let text = format!(
        "presets = [{}]\n",
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    parse_str("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn port_flag_messages() {
    // (name, text as a flag takes it, expected error)
    let rows: Vec<(&str, &str, PortError, &str)> = vec![
        (
            "flag: not a port",
            "80,http",
            PortError::Syntax("http".into()),
            "`http` is not a port or a port range (write 8080 or 8000-8010)",
        ),
        (
            "flag: negative",
            "-1",
            PortError::Syntax("-1".into()),
            "`-1` is not a port or a port range (write 8080 or 8000-8010)",
        ),
        (
            "flag: too large",
            "443,65536",
            PortError::OutOfRange(65536),
            "port 65536 is outside 0..=65535",
        ),
        (
            "flag: reversed range",
            "9000-8000",
            PortError::Reversed(9000, 8000),
            "port range 9000-8000 ends before it starts",
        ),
        (
            "flag: open range",
            "8000-",
            PortError::Syntax("8000-".into()),
            "`8000-` is not a port or a port range (write 8080 or 8000-8010)",
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected, says) in &rows {
        match parse_port_list(text) {
            Ok(v) => failures.push(format!("case `{name}`\n  input: {text:?}\n  parsed: {v:?}")),
            Err(e) => {
                if e != *expected || e.to_string() != *says {
                    failures.push(format!(
                        "case `{name}`\n  input: {text:?}\n  expected {expected:?}: {says}\n  actual: {e:?}: {e}"
                    ));
                }
            }
        }
    }
    report(rows.len(), failures);
    // A single bad entry through the one-port parser, as policies use it.
    assert_eq!(
        PortRange::parse(" 8000 - 80 "),
        Err(PortError::Reversed(8000, 80))
    );
}

// ----------------------------------------------------------------------------------------
// Writers: one warning for each part the target cannot say, and the one policy a target
// cannot express at all.

fn fs(rights: &[FsRight]) -> FsAccess {
    FsAccess::of(rights)
}

/// A policy that handles `execute` (and requires it), with nothing else.
fn handles_execute() -> Policy {
    let mut p = Policy::default();
    p.fs.handled = fs(&[FsRight::Execute]);
    p.fs.required = p.fs.handled;
    p
}

#[test]
fn writer_messages() {
    type Build = fn() -> Policy;
    /// The warnings (one fragment each, in order), or the error.
    type Expected = Result<&'static [&'static str], &'static str>;
    // (name, policy, target, the warnings (one fragment each, in order) or the error)
    let rows: Vec<(&str, Build, Dialect, Expected)> = vec![
        (
            "moat: rules under a lifted filesystem",
            || {
                let mut p = Policy::deny_all();
                p.grant_paths(["/usr"], fs(&[FsRight::Execute]), false, "t");
                p.fs.unrestricted = true;
                p
            },
            Dialect::Moat,
            Ok(&["filesystem: the policy lifts every filesystem restriction, so its 1 rule(s) mean nothing and are left out"]),
        ),
        (
            "moat: strict-mode requirement neither baseline nor all",
            || {
                let mut p = Policy::deny_all();
                p.fs.required = fs(&[FsRight::ReadFile]);
                p
            },
            Dialect::Moat,
            Ok(&["filesystem: strict mode required read_file of the handled rights; with an explicit `handled` list it requires all of them"]),
        ),
        (
            "moat: port rules under a lifted network",
            || {
                let mut p = Policy::deny_all();
                p.grant_ports([PortRange::single(80)], NetAccess::of(&[NetRight::BindTcp]), "t");
                p.net.unrestricted = true;
                p
            },
            Dialect::Moat,
            Ok(&["network: the policy lifts every network restriction, so its 1 port rule(s) mean nothing and are left out"]),
        ),
        (
            "moat: partial network with the socket seal",
            || {
                let mut p = Policy::deny_all();
                p.net.handled = NetAccess::of(&[NetRight::BindTcp]);
                p
            },
            Dialect::Moat,
            Ok(&["network: the seccomp seal of sockets Landlock cannot see (raw, packet, SCTP, MPTCP, UDP before ABI 10) is not written"]),
        ),
        (
            "moat: a variable set twice",
            || {
                let mut p = Policy::deny_all();
                p.env.set = vec![("A".into(), "1".into()), ("A".into(), "2".into())];
                p
            },
            Dialect::Moat,
            Ok(&["env: `A` is set twice; the last value (`2`) is kept"]),
        ),
        (
            "landlockconfig: a policy that restricts nothing",
            Policy::default,
            Dialect::LandlockConfig,
            Err("landlockconfig cannot express this policy: the policy restricts nothing, and landlockconfig refuses an empty configuration"),
        ),
        (
            "landlockconfig: a lifted policy restricts nothing",
            || {
                let mut p = Policy::deny_all();
                p.lift_filesystem();
                p.lift_network();
                p.scopes = ScopeSet::EMPTY;
                p
            },
            Dialect::LandlockConfig,
            Err("landlockconfig cannot express this policy: the policy restricts nothing"),
        ),
        (
            "landlockconfig: scopes alone are expressible",
            || Policy {
                scopes: ScopeSet::all(),
                ..Policy::default()
            },
            Dialect::LandlockConfig,
            Ok(&[]),
        ),
        (
            "landlockconfig: compatibility mode",
            || Policy {
                compat: Some(Compat::Strict),
                ..handles_execute()
            },
            Dialect::LandlockConfig,
            Ok(&["landlockconfig has no compatibility mode: `strict` is dropped (moat's default, or the command line, decides)"]),
        ),
        (
            "landlockconfig: required rights",
            || {
                let mut p = handles_execute();
                p.fs.handled = fs(&[FsRight::Execute, FsRight::Truncate]);
                p
            },
            Dialect::LandlockConfig,
            Ok(&["landlockconfig cannot say which handled rights strict mode requires: read back, strict mode also requires truncate (so it needs Landlock ABI 3 instead of 1)"]),
        ),
        (
            "landlockconfig: socket seal",
            || {
                let mut p = Policy::default();
                p.net.handled = NetAccess::of(&[NetRight::ConnectTcp]);
                p.net.seal_sockets = true;
                p
            },
            Dialect::LandlockConfig,
            Ok(&["landlockconfig has no seccomp seal: sockets Landlock cannot see (raw, packet, SCTP, MPTCP, UDP before ABI 10) are no longer refused"]),
        ),
        (
            "landlockconfig: audit flags",
            || {
                let mut p = handles_execute();
                p.audit.log_new_exec = true;
                p
            },
            Dialect::LandlockConfig,
            Ok(&["landlockconfig has no audit flags: the kernel's default logging applies"]),
        ),
        (
            "landlockconfig: environment",
            || {
                let mut p = handles_execute();
                p.env.pass = vec!["PATH".into()];
                p
            },
            Dialect::LandlockConfig,
            Ok(&["landlockconfig has no environment settings: clear/pass/set are dropped"]),
        ),
        (
            "landlockconfig: optional paths",
            || {
                let mut p = handles_execute();
                p.grant_paths(["/opt/x"], fs(&[FsRight::Execute]), true, "t");
                p
            },
            Dialect::LandlockConfig,
            Ok(&["landlockconfig has no optional paths: 1 become required (/opt/x)"]),
        ),
        (
            "landlockconfig: moat variables",
            || {
                let mut p = handles_execute();
                p.grant_paths(["${HOME}/bin"], fs(&[FsRight::Execute]), false, "t");
                p
            },
            Dialect::LandlockConfig,
            Ok(&["paths use moat variables (${HOME}/bin); moat expands them when it reads the result, other landlockconfig readers do not"]),
        ),
        (
            "OCI #1241: scopes",
            || Policy {
                scopes: ScopeSet::all(),
                ..Policy::default()
            },
            Dialect::OciPr1241,
            Ok(&["OCI #1241 has no scopes: the abstract_unix_socket,signal scope(s) are dropped, so the program may signal or reach abstract unix sockets outside the sandbox"]),
        ),
        (
            "OCI #1241: optional paths and variables",
            || {
                let mut p = handles_execute();
                p.grant_paths(["${CWD}/bin"], fs(&[FsRight::Execute]), true, "t");
                p
            },
            Dialect::OciPr1241,
            Ok(&[
                "OCI #1241 has no optional paths: 1 become required (${CWD}/bin)",
                "paths use moat variables (${CWD}/bin); moat expands them when it reads the result, other OCI #1241 readers do not",
            ]),
        ),
        (
            "OCI #1241: a moat default policy",
            Policy::deny_all,
            Dialect::OciPr1241,
            Ok(&[
                "OCI #1241 cannot say which handled rights strict mode requires",
                "OCI #1241 has no seccomp seal",
                "OCI #1241 has no scopes",
            ]),
        ),
        (
            "OCI #1111: network rules",
            || {
                let mut p = handles_execute();
                p.net.handled = NetAccess::of(&[NetRight::BindTcp]);
                p.grant_ports([PortRange::single(80)], NetAccess::of(&[NetRight::BindTcp]), "t");
                p
            },
            Dialect::OciPr1111,
            Ok(&["OCI #1111 has no network rules: bind_tcp stop being restricted (1 port rule(s) dropped)"]),
        ),
        (
            "OCI #1111: environment and audit",
            || {
                let mut p = handles_execute();
                p.env.clear = true;
                p.audit.log_same_exec = false;
                p
            },
            Dialect::OciPr1111,
            Ok(&[
                "OCI #1111 has no audit flags",
                "OCI #1111 has no environment settings",
            ]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, build, target, expected) in &rows {
        let policy = build();
        let got: Result<Written, WriteError> = write::write(&policy, *target);
        let ok = match (&got, expected) {
            (Ok(w), Ok(says)) => {
                w.warnings.len() == says.len()
                    && w.warnings
                        .iter()
                        .zip(says.iter())
                        .all(|(w, s)| w.contains(s))
            }
            (Err(e), Err(says)) => e.to_string().starts_with(says),
            _ => false,
        };
        if !ok {
            let actual = match &got {
                Ok(w) => format!("warnings {:#?}", w.warnings),
                Err(e) => format!("error: {e}"),
            };
            failures.push(format!(
                "case `{name}`\n  input: {policy:?} to {}\n  expected {expected:?}\n  actual: {actual}",
                target.name()
            ));
        }
    }
    report(rows.len(), failures);
}
