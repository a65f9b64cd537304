//! Property tests of build/dependencies.yaml's reader: no panic on any input, and a file written
//! the way Kubernetes writes it reads back entry for entry.

use bump_go_version::depsyaml::{scalar, DepsYaml};
use proptest::prelude::*;

/// Lines shaped like dependencies.yaml, to get past the reader's first checks.
fn structured_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "  - name: \"?[a-z: ]{0,20}\"?",
        "    version: [0-9a-z.\\-]{0,12}",
        "    refPaths:( \\[\\])?",
        "    - path: [a-z./]{0,20}",
        "      (match|mathc): [ -~]{0,30}",
        "dependencies:( [0-9]+)?",
        "---",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(structured_line(), 0..30).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_reader_never_panics(s in prop_oneof![any::<String>(), text()]) {
        let _ = DepsYaml::read(&s);
        let _ = DepsYaml::parse(&s);
        let _ = scalar(&s);
    }

    /// A dependencies.yaml written the way Kubernetes writes it reads back entry for entry.
    #[test]
    fn deps_yaml_round_trip(deps in prop::collection::vec((
        "[a-z][a-z:/. -]{0,20}[a-z]",
        "[0-9]\\.[0-9]{1,2}\\.[0-9]{1,2}",
        prop::collection::vec(("[a-z][a-z/._-]{0,20}", proptest::option::of("[a-z][a-zA-Z=_ ]{0,20}")), 0..4),
    ), 1..6)) {
        let mut s = String::from("dependencies:\n");
        for (name, version, refs) in &deps {
            s += &format!("  - name: \"{name}\"\n    version: {version}\n");
            if !refs.is_empty() {
                s += "    refPaths:\n";
                for (p, m) in refs {
                    s += &format!("    - path: {p}\n");
                    if let Some(m) = m {
                        s += &format!("      match: {m}\n");
                    }
                }
            }
        }
        let y = DepsYaml::read(&s).map_err(|e| TestCaseError::fail(format!("{e}\n{s}")))?;
        let got: Vec<_> = y.deps.iter().map(|d| (d.name.clone(), d.version.clone(), d.ref_paths.iter().map(|r| (r.path.clone(), r.matcher.clone())).collect::<Vec<_>>())).collect();
        let want: Vec<_> = deps.iter().map(|(n, v, r)| (n.clone(), v.clone(), r.iter().map(|(p, m)| (p.clone(), m.clone().map(|m| m.trim_end().to_string()).filter(|m| !m.is_empty()))).collect::<Vec<_>>())).collect();
        prop_assert_eq!(got, want);
    }
}
