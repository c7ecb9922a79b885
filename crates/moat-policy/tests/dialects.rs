//! Every dialect from fixture files, every kind of error with its position, and writers
//! that read back to the same policy.

use moat_policy::dialect::{parse_document, Dialect, Document};
use moat_policy::write::{self, WriteError, Written};
use moat_policy::{
    fs_baseline, AuditFlags, Compat, FsAccess, FsGroup, FsRight, NetAccess, NetRight, Policy,
    PortRange, Right, Scope, ScopeSet,
};
use std::path::Path;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str) -> (Policy, Dialect) {
    let text = fixture(name);
    parse_document(&Document::new(name, &text)).unwrap_or_else(|e| panic!("{e}"))
}

fn read_back(label: &str, text: &str) -> (Policy, Dialect) {
    parse_document(&Document::new(label, text))
        .unwrap_or_else(|e| panic!("{e}\n--- written text:\n{text}"))
}

fn paths(p: &Policy) -> Vec<(&str, FsAccess)> {
    p.fs.rules
        .iter()
        .map(|r| (r.path.as_str(), r.access))
        .collect()
}

// ----------------------------------------------------------------------------------------
// What a policy means, for comparing a policy with what its conversion reads back as.

/// The ports a policy grants each network right on, as merged ranges.
fn port_map(
    rules: &[moat_policy::PortRule],
    handled: NetAccess,
) -> Vec<(NetRight, Vec<PortRange>)> {
    NetRight::ALL
        .iter()
        .copied()
        .filter(|r| handled.contains(*r))
        .map(|right| {
            let mut ranges: Vec<PortRange> = rules
                .iter()
                .filter(|r| r.access.contains(right))
                .map(|r| r.ports)
                .collect();
            ranges.sort();
            let mut merged: Vec<PortRange> = Vec::new();
            for r in ranges {
                match merged.last_mut() {
                    Some(last) if u32::from(r.start) <= u32::from(last.end) + 1 => {
                        last.end = last.end.max(r.end)
                    }
                    _ => merged.push(r),
                }
            }
            (right, merged)
        })
        .collect()
}

/// Everything a policy says, rules as sorted (path, rights, optional) with one right set per
/// path and rule.
#[derive(Debug, PartialEq, Eq)]
struct Full {
    compat: Option<Compat>,
    fs_unrestricted: bool,
    fs_handled: FsAccess,
    fs_required: FsAccess,
    fs_rules: Vec<(String, u64, bool)>,
    net_unrestricted: bool,
    net_handled: NetAccess,
    ports: Vec<(NetRight, Vec<PortRange>)>,
    allow_udp: bool,
    seal: bool,
    scopes: ScopeSet,
    audit: AuditFlags,
    env_clear: bool,
    env_pass: Vec<String>,
    env_set: Vec<(String, String)>,
}

fn full(p: &Policy) -> Full {
    let mut fs_rules: Vec<(String, u64, bool)> =
        p.fs.rules
            .iter()
            .map(|r| (r.path.clone(), r.access.bits(), r.optional))
            .collect();
    fs_rules.sort();
    let mut env_set = p.env.set.clone();
    env_set.sort();
    Full {
        compat: p.compat,
        fs_unrestricted: p.fs.unrestricted,
        fs_handled: p.fs.handled,
        fs_required: p.fs.required,
        fs_rules,
        net_unrestricted: p.net.unrestricted,
        net_handled: p.net.handled,
        ports: port_map(&p.net.rules, NetAccess::all()),
        allow_udp: p.net.allow_udp,
        seal: p.net.seal_sockets,
        scopes: p.scopes,
        audit: p.audit,
        env_clear: p.env.clear,
        env_pass: p.env.pass.clone(),
        env_set,
    }
}

/// What Landlock enforces: handled rights (nothing when lifted, no UDP when all UDP is
/// allowed), the handled part of each rule, and scopes.
#[derive(Debug, PartialEq, Eq)]
struct Landlock {
    fs_handled: FsAccess,
    fs_rules: Vec<(String, u64)>,
    net_handled: NetAccess,
    ports: Vec<(NetRight, Vec<PortRange>)>,
    scopes: ScopeSet,
}

fn landlock(p: &Policy, with_scopes: bool) -> Landlock {
    let fs_handled = if p.fs.unrestricted {
        FsAccess::EMPTY
    } else {
        p.fs.handled
    };
    let mut net_handled = if p.net.unrestricted {
        NetAccess::EMPTY
    } else {
        p.net.handled
    };
    if p.net.allow_udp {
        net_handled = net_handled.minus(NetAccess::of(&[
            NetRight::BindUdp,
            NetRight::ConnectSendUdp,
        ]));
    }
    let mut fs_rules: Vec<(String, u64)> =
        p.fs.rules
            .iter()
            .map(|r| (r.path.clone(), r.access.intersect(fs_handled).bits()))
            .filter(|(_, a)| *a != 0)
            .collect();
    fs_rules.sort();
    fs_rules.dedup();
    Landlock {
        fs_handled,
        fs_rules,
        net_handled,
        ports: port_map(&p.net.rules, net_handled),
        scopes: if with_scopes {
            p.scopes
        } else {
            ScopeSet::EMPTY
        },
    }
}

/// Every policy fixture, of every dialect and format.
const FIXTURES: [&str; 11] = [
    "lc-basic.json",
    "lc-vars.toml",
    "lc-numeric.json",
    "oci-1241.json",
    "oci-1241-numeric.json",
    "oci-1111.json",
    "oci-config.json",
    "moat-full.toml",
    "moat-full.json",
    "moat-full.yaml",
    "moat-partial.toml",
];

fn all_inputs() -> Vec<(String, Policy)> {
    let mut v: Vec<(String, Policy)> = FIXTURES
        .iter()
        .map(|n| (n.to_string(), load(n).0))
        .collect();
    for preset in moat_policy::presets::PRESETS {
        let p = moat_policy::presets::load(preset.name).unwrap_or_else(|e| panic!("{e}"));
        v.push((format!("preset {}", preset.name), p));
    }
    v.push(("allow-all".into(), Policy::allow_all()));
    v.push(("deny-all".into(), Policy::deny_all()));
    let mut lifted = Policy::deny_all();
    lifted.lift_filesystem();
    lifted.lift_network();
    v.push(("lifted".into(), lifted));
    v
}

// ----------------------------------------------------------------------------------------
// Reading each dialect.

#[test]
fn landlockconfig_json() {
    let (p, d) = load("lc-basic.json");
    assert_eq!(d, Dialect::LandlockConfig);
    assert_eq!(p.fs.handled, FsAccess::supported_by(moat_policy::Abi::V5));
    assert_eq!(p.fs.required, p.fs.handled);
    assert_eq!(p.net.handled, NetAccess::of(&[NetRight::BindTcp]));
    assert!(!p.net.seal_sockets);
    assert!(p.scopes.is_empty());
    assert_eq!(p.compat, None);
    let rx = FsAccess::of(&[
        FsRight::Execute,
        FsRight::ReadFile,
        FsRight::ReadDir,
        FsRight::Refer,
    ]);
    assert_eq!(paths(&p)[0], ("${CWD}", rx));
    assert_eq!(paths(&p)[4], ("/etc", rx));
    let rw = FsAccess::supported_by(moat_policy::Abi::V5).minus(FsAccess::of(&[FsRight::Execute]));
    assert_eq!(paths(&p)[5], ("/tmp", rw));
    let ports: Vec<String> = p.net.rules.iter().map(|r| r.ports.to_string()).collect();
    assert_eq!(ports, ["80", "443"]);
    assert!(p
        .net
        .rules
        .iter()
        .all(|r| r.origin.0.contains("netPort[0]")));
}

#[test]
fn landlockconfig_toml_with_variables() {
    let (p, d) = load("lc-vars.toml");
    assert_eq!(d, Dialect::LandlockConfig);
    assert_eq!(p.fs.handled, FsAccess::supported_by(moat_policy::Abi::V6));
    assert_eq!(p.scopes, ScopeSet::all());
    assert_eq!(p.net.handled, NetAccess::of(&[NetRight::ConnectTcp]));
    let got: Vec<&str> = p.fs.rules.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(got, ["/usr", "/etc", "/tmp", "/var/tmp", "${HOME}/.cache"]);
    // v5.read_execute is the ABI-5 group whatever `abi` says.
    assert!(p.fs.rules[0].access.contains(FsRight::Refer));
    let ports: Vec<String> = p.net.rules.iter().map(|r| r.ports.to_string()).collect();
    assert_eq!(ports, ["80-82", "443"]);
}

#[test]
fn landlockconfig_raw_numbers() {
    let (p, _) = load("lc-numeric.json");
    assert_eq!(
        p.fs.handled,
        FsAccess::of(&[
            FsRight::Execute,
            FsRight::ReadFile,
            FsRight::ReadDir,
            FsRight::Truncate
        ])
    );
    assert_eq!(
        p.net.handled,
        NetAccess::of(&[NetRight::BindTcp, NetRight::ConnectTcp])
    );
    assert_eq!(p.scopes, ScopeSet::of(&[Scope::Signal]));
    assert_eq!(p.fs.rules[0].access, FsGroup::ReadExec.access());
    assert_eq!(
        p.net.rules[0].access,
        NetAccess::of(&[NetRight::ConnectTcp])
    );
}

#[test]
fn oci_1241() {
    let (p, d) = load("oci-1241.json");
    assert_eq!(d, Dialect::OciPr1241);
    assert_eq!(p.compat, Some(Compat::BestEffort));
    assert_eq!(p.fs.handled, FsAccess::supported_by(moat_policy::Abi::V3));
    assert_eq!(p.fs.required, p.fs.handled);
    assert_eq!(
        p.net.handled,
        NetAccess::of(&[NetRight::BindTcp, NetRight::ConnectTcp])
    );
    assert_eq!(p.fs.rules.len(), 5);
    assert!(!p.net.seal_sockets);
    assert!(p.scopes.is_empty());
    let ports: Vec<(String, NetAccess)> = p
        .net
        .rules
        .iter()
        .map(|r| (r.ports.to_string(), r.access))
        .collect();
    assert_eq!(
        ports,
        [
            ("8080".to_string(), NetAccess::of(&[NetRight::BindTcp])),
            ("443".to_string(), NetAccess::of(&[NetRight::ConnectTcp])),
            ("5432".to_string(), NetAccess::of(&[NetRight::ConnectTcp])),
        ]
    );
}

#[test]
fn oci_1241_raw_numbers() {
    let (p, d) = load("oci-1241-numeric.json");
    assert_eq!(d, Dialect::OciPr1241);
    assert_eq!(p.compat, Some(Compat::Strict));
    assert!(p.fs.handled.contains(FsRight::IoctlDev));
    assert_eq!(p.fs.rules[0].access, FsGroup::ReadExec.access());
    assert_eq!(p.fs.rules[1].access, FsAccess::of(&[FsRight::IoctlDev]));
    assert_eq!(p.net.rules[0].access, NetAccess::of(&[NetRight::BindTcp]));
}

#[test]
fn oci_1111_defaults_to_best_effort() {
    let (p, d) = load("oci-1111.json");
    assert_eq!(d, Dialect::OciPr1111);
    assert_eq!(p.compat, Some(Compat::BestEffort));
    assert!(p.net.handled.is_empty());
    assert_eq!(p.fs.rules.len(), 3);
    assert_eq!(p.fs.rules[2].path, "/var/lib/app");
}

#[test]
fn oci_whole_config_json() {
    let (p, d) = load("oci-config.json");
    assert_eq!(d, Dialect::OciPr1241);
    assert_eq!(p.compat, None);
    assert_eq!(p.fs.rules.len(), 2);
    assert!(p.fs.rules[0]
        .origin
        .0
        .contains("process.landlock.rules.pathBeneath[0]"));
    assert_eq!(p.net.rules[0].ports, PortRange::single(8080));
}

#[test]
fn moat_in_three_syntaxes() {
    let t = full(&load("moat-full.toml").0);
    assert_eq!(t, full(&load("moat-full.json").0));
    assert_eq!(t, full(&load("moat-full.yaml").0));
    assert_eq!(t.compat, Some(Compat::BestEffort));
    assert!(t.seal);
    assert!(!t.scopes.contains(Scope::Signal));
    assert!(t.audit.log_new_exec);
    assert_eq!(t.env_set[1].0, "WEIRD KEY");
}

#[test]
fn moat_partial_handled() {
    let (p, d) = load("moat-partial.toml");
    assert_eq!(d, Dialect::Moat);
    assert_eq!(
        p.fs.handled,
        FsAccess::of(&[FsRight::Execute, FsRight::WriteFile, FsRight::MakeReg])
    );
    assert_eq!(p.fs.required, p.fs.handled);
    assert_eq!(p.net.handled, NetAccess::of(&[NetRight::BindTcp]));
    assert!(!p.net.seal_sockets);
    assert!(p.scopes.is_empty());
}

// ----------------------------------------------------------------------------------------
// Errors: file, line, column and key for each kind of mistake.

#[test]
fn every_error_is_positioned() {
    // (fixture, "file:line:column:", key, part of the message)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "lc-unknown-right.json",
            "lc-unknown-right.json:3:49:",
            "ruleset[0].handledAccessFs[1]",
            "unknown filesystem right `read_fille`",
        ),
        (
            "lc-unknown-key.toml",
            "lc-unknown-key.toml:8:1:",
            "path_beneath[0].parents",
            "unknown field `parents`",
        ),
        (
            "lc-bad-port.toml",
            "lc-bad-port.toml:3:13:",
            "net_port[0].port[1]",
            "`http` is not a port",
        ),
        (
            "lc-port-range.json",
            "lc-port-range.json:3:59:",
            "netPort[0].port[1]",
            "port 65536 is outside 0..=65535",
        ),
        (
            "lc-bad-variable.toml",
            "lc-bad-variable.toml:7:23:",
            "path_beneath[0].parent[1]",
            "variable `dat` is not defined",
        ),
        (
            "lc-bad-variable-name.json",
            "lc-bad-variable-name.json:3:22:",
            "variable[0].name",
            "variable name `my-dir` may hold only",
        ),
        (
            "lc-wrong-type.json",
            "lc-wrong-type.json:3:54:",
            "pathBeneath[0].parent",
            "invalid type: string \"/etc\"",
        ),
        (
            "lc-missing-abi.toml",
            "lc-missing-abi.toml:5:20:",
            "path_beneath[0].allowed_access",
            "declares no `abi`",
        ),
        (
            "oci-unknown-right.json",
            "oci-unknown-right.json:4:45:",
            "handledAccess.handledAccessNetwork[1]",
            "unknown network right `listen`",
        ),
        (
            "oci-unknown-key.json",
            "oci-unknown-key.json:8:64:",
            "process.landlock.rules.pathBeneath[0].path",
            "unknown field `path`",
        ),
        (
            "oci-bad-port.json",
            "oci-bad-port.json:4:69:",
            "rules.networkPort[0].ports[0]",
            "`https` is not a port",
        ),
        (
            "oci-port-range.json",
            "oci-port-range.json:4:61:",
            "rules.networkPort[0].ports[0]",
            "port -1 is outside 0..=65535",
        ),
        (
            "oci-wrong-type.json",
            "oci-wrong-type.json:3:27:",
            "disableBestEffort",
            "invalid type: string \"no\", expected a boolean",
        ),
        (
            "oci-unhandled.json",
            "oci-unhandled.json:6:41:",
            "rules.pathBeneath[1].allowedAccess",
            "grants write_file, which `handledAccess.handledAccessFS` does not handle",
        ),
        (
            "oci-unknown-bits.json",
            "oci-unknown-bits.json:2:51:",
            "handledAccess.handledAccessFS[1]",
            "bits 0x200000 are unknown to moat",
        ),
        (
            "oci-no-landlock.json",
            "oci-no-landlock.json:3:3:",
            "process.landlock",
            "no `process.landlock` object",
        ),
        (
            "moat-handled-conflict.toml",
            "moat-handled-conflict.toml:6:1:",
            "network.handled",
            "`network.unrestricted = true`",
        ),
        (
            "moat-bad-handled.toml",
            "moat-bad-handled.toml:2:25:",
            "filesystem.handled[1]",
            "unknown filesystem right `exec_file`",
        ),
    ];
    for (name, position, key, message) in cases {
        let text = fixture(&format!("errors/{name}"));
        let e = match parse_document(&Document::new(name, &text)) {
            Ok((p, d)) => panic!("{name}: expected an error, got {d:?} {p:?}"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with(position), "{name}: {e}");
        assert!(e.contains(&format!("`{key}`: ")), "{name}: {e}");
        assert!(e.contains(message), "{name}: {e}");
        // The snippet under the message shows the offending line.
        assert!(e.contains(" | "), "{name}: {e}");
    }

    // An empty landlockconfig configuration has no key, but still a position.
    let text = fixture("errors/lc-empty.json");
    let e = parse_document(&Document::new("lc-empty.json", &text))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("lc-empty.json:1:1: empty configuration"),
        "{e}"
    );
}

// ----------------------------------------------------------------------------------------
// Writers.

#[test]
fn moat_toml_json_and_yaml_round_trip_everything() {
    type Writer = fn(&Policy) -> Result<write::Written, WriteError>;
    let writers: [(&str, Writer); 3] = [
        ("moat.toml", write::to_moat_toml),
        ("moat.json", write::to_moat_json),
        ("moat.yaml", write::to_moat_yaml),
    ];
    for ((name, p), (file, writer)) in all_inputs()
        .into_iter()
        .flat_map(|input| writers.map(move |w| (input.clone(), w)))
    {
        let w = writer(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w.warnings.is_empty(), "{name}: {:?}", w.warnings);
        let (back, d) = read_back(&format!("{name} as {file}"), &w.text);
        assert_eq!(d, Dialect::Moat, "{name}");
        if p.fs.unrestricted || p.net.unrestricted {
            // Lifting a domain drops its rules in the model too.
            assert_eq!(back.fs.unrestricted, p.fs.unrestricted, "{name}");
            assert_eq!(back.net.unrestricted, p.net.unrestricted, "{name}");
            continue;
        }
        assert_eq!(full(&back), full(&p), "{name}\n{}", w.text);
    }
}

#[test]
fn landlockconfig_round_trips_what_landlock_enforces() {
    for (name, p) in all_inputs() {
        let w = match write::to_landlockconfig_json(&p) {
            Ok(w) => w,
            Err(WriteError::Inexpressible { .. }) => {
                assert!(
                    landlock(&p, true) == landlock(&Policy::allow_all(), true),
                    "{name}: refused although it restricts something"
                );
                continue;
            }
        };
        let (back, d) = read_back(&format!("{name} as landlockconfig.json"), &w.text);
        assert_eq!(d, Dialect::LandlockConfig, "{name}");
        assert_eq!(
            landlock(&back, true),
            landlock(&p, true),
            "{name}\n{}",
            w.text
        );
        assert_eq!(back.fs.required, back.fs.handled, "{name}");
        assert!(!back.net.seal_sockets, "{name}");
    }
}

#[test]
fn oci_round_trips_what_landlock_enforces() {
    for (name, p) in all_inputs() {
        let w = write::to_oci_json(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (back, d) = read_back(&format!("{name} as oci.json"), &w.text);
        assert_eq!(d, Dialect::OciPr1241, "{name}");
        assert_eq!(
            landlock(&back, false),
            landlock(&p, false),
            "{name}\n{}",
            w.text
        );
        assert_eq!(back.compat, p.compat, "{name}");

        let w = write::to_oci_1111_json(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (back, d) = read_back(&format!("{name} as oci-1111.json"), &w.text);
        assert_eq!(d, Dialect::OciPr1111, "{name}");
        let mut want = landlock(&p, false);
        want.net_handled = NetAccess::EMPTY;
        want.ports = Vec::new();
        assert_eq!(landlock(&back, false), want, "{name}\n{}", w.text);
        assert_eq!(
            back.compat.unwrap_or_default(),
            p.compat.unwrap_or_default(),
            "{name}"
        );
        if !p.net.handled.is_empty() && !p.net.unrestricted {
            assert!(
                w.warnings.iter().any(|x| x.contains("no network rules")),
                "{name}: {:?}",
                w.warnings
            );
        }
    }
}

/// A conversion is exact (no warning) exactly when the target can say everything.
#[test]
fn warnings_name_each_loss() {
    // landlockconfig to landlockconfig, OCI to OCI: nothing to lose.
    for name in ["lc-basic.json", "lc-numeric.json"] {
        let w = write::to_landlockconfig_json(&load(name).0).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.warnings.is_empty(), "{name}: {:?}", w.warnings);
    }
    for name in ["oci-1241.json", "oci-1241-numeric.json", "oci-config.json"] {
        let w = write::to_oci_json(&load(name).0).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.warnings.is_empty(), "{name}: {:?}", w.warnings);
    }
    let w = write::to_oci_1111_json(&load("oci-1111.json").0).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);

    // landlockconfig with moat variables: said, not dropped.
    let w =
        write::to_landlockconfig_json(&load("lc-vars.toml").0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    assert!(w.warnings[0].contains("${HOME}"), "{:?}", w.warnings);

    // A full moat policy into OCI: every part OCI lacks is named.
    let (p, _) = load("moat-full.toml");
    let Written { text, warnings } = write::to_oci_json(&p).unwrap_or_else(|e| panic!("{e}"));
    let all = warnings.join("\n");
    for lost in [
        "strict mode",
        "seccomp seal",
        "no scopes",
        "no audit flags",
        "no environment settings",
        "no optional paths",
        "moat variables",
    ] {
        assert!(all.contains(lost), "missing `{lost}` in:\n{all}");
    }
    assert!(text.contains("\"enableBestEffort\": true"), "{text}");
    // UDP rights and post-ABI-3 filesystem rights are written as UAPI numbers.
    assert!(text.contains("\"allowedAccess\": [4]"), "{text}");
    assert!(text.contains("32768"), "{text}");

    // A compatibility mode has no place in landlockconfig.
    let w = write::to_landlockconfig_json(&p).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.warnings.iter().any(|x| x.contains("compatibility mode")));
}

#[test]
fn conversions_chain() {
    // landlockconfig -> moat -> OCI -> landlockconfig keeps what Landlock enforces.
    let (lc, _) = load("lc-basic.json");
    let moat = write::to_moat_toml(&lc).unwrap_or_else(|e| panic!("{e}"));
    assert!(moat.text.contains("handled = "), "{}", moat.text);
    let (p1, _) = read_back("step1.toml", &moat.text);
    let oci = write::to_oci_json(&p1).unwrap_or_else(|e| panic!("{e}"));
    let (p2, _) = read_back("step2.json", &oci.text);
    let lc2 = write::to_landlockconfig_json(&p2).unwrap_or_else(|e| panic!("{e}"));
    let (p3, _) = read_back("step3.json", &lc2.text);
    assert_eq!(landlock(&p3, false), landlock(&lc, false));
    assert_eq!(p3.fs.required, lc.fs.required);

    // The dispatcher writes what each dialect reads back as.
    for dialect in [
        Dialect::Moat,
        Dialect::LandlockConfig,
        Dialect::OciPr1241,
        Dialect::OciPr1111,
    ] {
        let w = write::write(&lc, dialect).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_back("x", &w.text).1, dialect);
    }
}

#[test]
fn ranges_and_odd_paths_survive() {
    let mut p = Policy::default();
    p.fs.handled = FsGroup::ReadWrite.access();
    p.fs.required = p.fs.handled;
    p.grant_paths(
        ["/srv/price$tag", "/srv/a b/\"quoted\"", "/srv/${HOME}x"],
        FsGroup::Read.access(),
        false,
        "t",
    );
    p.net.handled = NetAccess::of(&[NetRight::BindTcp]);
    p.grant_ports(
        [
            PortRange {
                start: 8000,
                end: 8099,
            },
            PortRange::single(0),
            PortRange::single(65535),
        ],
        NetAccess::of(&[NetRight::BindTcp]),
        "t",
    );
    for dialect in [Dialect::Moat, Dialect::LandlockConfig, Dialect::OciPr1241] {
        let w = write::write(&p, dialect).unwrap_or_else(|e| panic!("{e}"));
        let (back, _) = read_back("x", &w.text);
        assert_eq!(
            landlock(&back, false),
            landlock(&p, false),
            "{dialect:?}\n{}",
            w.text
        );
    }
}

#[test]
fn default_moat_policy_stays_default() {
    let w = write::to_moat_toml(&Policy::deny_all()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.text, "version = 1\n");
    let (back, _) = read_back("d.toml", &w.text);
    assert_eq!(back.fs.required, fs_baseline());
    assert!(back.net.seal_sockets);
}

/// moat-runtime's note to the launcher that UDP ports are enforced by cgroup-bpf survives
/// the JSON it writes, and nothing else sets it.
#[test]
fn udp_ports_enforced_by_cgroup_bpf_round_trips() {
    let text =
        "version = 1\n[network]\nconnect_udp = [53]\nudp_ports_enforced_by = \"cgroup-bpf\"\n";
    let p = moat_policy::parse_str("p.toml", text).unwrap();
    assert!(p.net.udp_ports_by_cgroup);
    let json = moat_policy::write::to_moat_json(&p).unwrap().text;
    assert!(
        json.contains("\"udp_ports_enforced_by\":\"cgroup-bpf\""),
        "{json}"
    );
    assert!(
        moat_policy::parse_str("p.json", &json)
            .unwrap()
            .net
            .udp_ports_by_cgroup
    );
    let plain = moat_policy::parse_str("p.toml", "[network]\nconnect_udp = [53]\n").unwrap();
    assert!(!plain.net.udp_ports_by_cgroup);
    // A merge with a policy that does not say so does not inherit it.
    assert!(!p.merge(plain).net.udp_ports_by_cgroup);
}

/// `parse_document` reads moat's own dialect before detecting one; every fixture still
/// reads as the dialect detection names.
#[test]
fn reading_moat_first_agrees_with_detection() {
    for name in FIXTURES {
        let text = fixture(name);
        let doc = Document::new(name, &text);
        let detected = moat_policy::dialect::detect(&doc.value().unwrap());
        assert_eq!(load(name).1, detected, "{name}");
    }
}
