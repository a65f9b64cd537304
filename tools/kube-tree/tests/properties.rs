//! Property tests of every parser of the shared crate: no panic on any input, and round trips
//! where a value is printed and read back.

use camino::Utf8PathBuf;
use kube_tree::gomod::{GoMod, ModulesTxt};
use kube_tree::gover::{self, GoVersion};
use kube_tree::scripts::{bash_array, GolangSh};
use kube_tree::{cli, values, version, Tree};
use proptest::prelude::*;
use std::ffi::OsString;

/// Lines shaped like go.mod / go.work / modules.txt, to get past the first
/// check of each reader.
fn structured_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(module|go|toolchain|require|replace|exclude|retract|use|godebug|tool) [ -~]{0,40}",
        "(require|replace|use) \\(",
        "\\)",
        "\t[a-z.]{1,10}/[a-z]{1,8} v[0-9]\\.[0-9]\\.[0-9]( // indirect)?",
        "\t[a-z./]{1,20} => [a-z./]{1,20}( v1\\.0\\.0)?",
        "# [a-z./]{1,20} v[0-9.]{1,6}( => [a-z./ ]{0,20})?",
        "## (explicit|workspace)(; go 1\\.[0-9]{1,2})?",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(structured_line(), 0..30).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_reader_panics_on_any_text(s in prop_oneof![any::<String>(), text()]) {
        let _ = GoVersion::parse(&s);
        let _ = GoVersion::release(&s);
        let _ = gover::from_go_version_output(&s);
        let _ = GoMod::read(&s);
        let _ = GoMod::parse(&s);
        let _ = ModulesTxt::parse(&s);
        let _ = GolangSh::parse(&s);
        let _ = bash_array(&s, "KUBE_SUPPORTED_SERVER_PLATFORMS");
        let _ = version::parse_defs(&s);
        let _ = version::semverize(&s);
        let _ = version::major_minor(&s);
        let _ = version::archive_substitutions(&s);
        let _ = values::image_ref("x", &s);
        let _ = values::registry("x", &s);
        let _ = values::port("x", &s);
        let _ = values::engine("x", &s);
        let _ = values::tag("x", &s);
    }

    /// What `read` accepts, `parse` reads the same way, and a clean go.mod always parses.
    #[test]
    fn go_mod_read_agrees_with_parse(s in text()) {
        if let Ok(m) = GoMod::read(&s) {
            prop_assert_eq!(m, GoMod::parse(&s));
        }
    }

    #[test]
    fn go_mod_written_by_go_reads_back(
        module in "[a-z]{1,8}\\.io/[a-z]{1,8}",
        go in "1\\.[0-9]{1,2}",
        reqs in prop::collection::vec(("[a-z]{1,6}\\.com/[a-z]{1,6}", "v[0-9]\\.[0-9]\\.[0-9]", any::<bool>()), 0..6),
    ) {
        let mut s = format!("module {module}\n\ngo {go}\n\nrequire (\n");
        for (p, v, ind) in &reqs {
            s += &format!("\t{p} {v}{}\n", if *ind { " // indirect" } else { "" });
        }
        s += ")\n";
        let m = GoMod::read(&s).map_err(TestCaseError::fail)?;
        prop_assert_eq!(m.module.as_deref(), Some(module.as_str()));
        prop_assert_eq!(m.go.as_deref(), Some(go.as_str()));
        let got: Vec<_> = m.requires.iter().map(|r| (r.path.clone(), r.version.clone(), r.indirect)).collect();
        prop_assert_eq!(got, reqs);
    }

    /// A release name prints and parses back to itself, with or without `go`, and orders
    /// against itself as equal.
    #[test]
    fn go_versions_round_trip(minor in 0u32..300, patch in proptest::option::of(0u32..300), pre in proptest::option::of(("(rc|beta)", 1u32..20))) {
        let text = match (&pre, patch) {
            (Some((k, n)), _) => format!("1.{minor}{k}{n}"),
            (None, Some(p)) => format!("1.{minor}.{p}"),
            (None, None) => format!("1.{minor}"),
        };
        let v = GoVersion::parse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&v.text, &text);
        prop_assert_eq!(GoVersion::parse(&format!("go{text}")).unwrap(), v.clone());
        prop_assert_eq!(gover::cmp(&v, &v), std::cmp::Ordering::Equal);
        if let Ok(r) = GoVersion::release(&text) {
            prop_assert_eq!(r, v);
        }
    }

    /// The split between a tool's own flags and the command it runs loses no word.
    #[test]
    fn command_split_keeps_every_word(args in prop::collection::vec(prop_oneof!["--?[a-z-]{0,8}", Just("--".to_string()), Just("--mode".to_string()), any::<String>()], 0..12)) {
        let os: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (own, cmd) = cli::split_command(os, &["--mode"]);
        let dashes = usize::from(args.len() > own.len() + cmd.len());
        prop_assert_eq!(own.len() + cmd.len() + dashes, args.len());
        let own: Vec<String> = own.iter().map(|o| o.to_string_lossy().into_owned()).collect();
        prop_assert_eq!(&args[..own.len()], &own[..]);
        prop_assert_eq!(&args[args.len() - cmd.len()..], &cmd[..]);
    }

    /// The era detector reads whatever bytes the tree's marker files hold without panicking.
    #[test]
    fn era_detector_never_panics(common in prop::collection::vec(any::<u8>(), 0..200), gomod in prop_oneof![text(), any::<String>()], gov in any::<String>(), cross in any::<String>()) {
        let dir = scratch();
        std::fs::create_dir_all(dir.join("build/build-image/cross")).unwrap();
        std::fs::write(dir.join("build/common.sh"), &common).unwrap();
        std::fs::write(dir.join("go.mod"), &gomod).unwrap();
        std::fs::write(dir.join(".go-version"), &gov).unwrap();
        std::fs::write(dir.join("build/build-image/cross/VERSION"), &cross).unwrap();
        let _ = Tree::open(&dir);
        let _ = kube_tree::root::why_kube(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn scratch() -> Utf8PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = Utf8PathBuf::from_path_buf(std::env::temp_dir()).unwrap().join(format!(
        "kube-tree-prop-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
