//! What every tool shares on the command line: `--help` and `cargo xtask help <tool>` print the
//! help and do nothing else; `-q`, `-v` and `KUBE_VERBOSE` set how much goes to stderr; log
//! lines carry the scripts' `+++ [MMDD HH:MM:SS]` prefix; data goes to stdout only.

use kube_tree::fixture::{self, Spec};
use kube_tree::proc::{Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_xtask");

fn xtask(dir: &camino::Utf8Path, args: &[&str], verbose: Option<&str>) -> Captured {
    let mut p = Proc::new(BIN).args(args).dir(dir).env_remove("KUBE_ROOT");
    p = match verbose {
        Some(v) => p.env("KUBE_VERBOSE", v),
        None => p.env_remove("KUBE_VERBOSE"),
    };
    p.output().unwrap()
}

/// Every file under `dir` with its size and mtime: `--help` must change none of them.
fn listing(dir: &camino::Utf8Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf().into_std_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            }
            v.push((e.path().display().to_string(), md.len(), md.modified().unwrap()));
        }
    }
    v.sort();
    v
}

#[test]
fn help_for_every_tool_prints_and_does_nothing() {
    let root = fixture::scratch_tree("cli-help", &Spec::era_b());
    let before = listing(&root);
    let tools: Vec<&str> = xtask::TOOLS.iter().map(|t| t.name).collect();
    assert!(tools.contains(&"setup-go") && tools.len() >= 10, "{tools:?}");
    for &t in &tools {
        for args in [vec!["help", t], vec![t, "--help"], vec![t, "-h"]] {
            let out = xtask(&root, &args, None);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
            assert!(
                out.stdout.starts_with(&format!("{t}: ")) && out.stdout.contains("Usage: "),
                "{args:?}: {}",
                out.stdout
            );
            assert!(out.stdout.contains(kube_tree::cli::EXIT_STATUS), "{args:?}");
            assert_eq!(out.stderr, "", "{args:?}: help logs nothing");
        }
    }
    // Aliases answer too.
    for (alias, name) in
        [("bump-go", "bump-go-version"), ("build", "kube-build"), ("vendor", "check-vendor"), ("run", "run-dockerized")]
    {
        let out = xtask(&root, &["help", alias], None);
        assert!(out.stdout.starts_with(&format!("{name}: ")), "{alias}: {}", out.stdout);
    }
    assert_eq!(listing(&root), before, "--help changed the tree");
    let list = xtask(&root, &[], None);
    assert_eq!(list.status.code(), Some(0));
    for t in &tools {
        assert!(list.stdout.contains(t), "{t} not listed: {}", list.stdout);
    }
    let bad = xtask(&root, &["help", "no-such-tool"], None);
    assert_eq!(bad.status.code(), Some(2));

    // The chores too: help, and nothing fetched or timed (an empty cache stays empty).
    let cache = testkit::scratch("cli-chore-help");
    for args in [["fetch-tree", "--help"], ["fetch-tree", "-h"], ["bench", "--help"], ["bench", "-h"]] {
        let out = Proc::new(BIN).args(args).env("KUBE_TEST_CACHE", &cache).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        assert!(out.stdout.to_lowercase().contains("usage: cargo xtask"), "{args:?}: {}", out.stdout);
        assert_eq!(out.stderr, "", "{args:?}");
    }
    assert!(listing(&cache).is_empty(), "a chore's --help fetched something: {:?}", listing(&cache));
}

/// The README's quick start, exactly as written (`cargo xtask` being this binary): its first
/// command does the main job on a machine that has no Kubernetes tree of its own.
#[test]
#[ignore = "full tier: needs the real v1.20.2 tree (apt-get source, network on first run)"]
fn the_readme_quick_start_works_as_written() {
    let test = "the_readme_quick_start_works_as_written";
    if let Err(e) = testkit::real_tree() {
        testkit::skip_if_missing(test, &e);
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    // The lines between the markers, as .ci/run extracts them.
    let start = readme.find("<!-- quick-start:begin -->").expect("a quick start");
    let block = &readme[start..];
    let first = block.lines().skip_while(|l| !l.starts_with("```sh")).nth(1).expect("a first command");
    let command = first.split("   #").next().unwrap().trim();
    assert!(command.starts_with("cargo xtask "), "{command}");
    let empty = testkit::scratch("cli-quickstart");
    let out = Proc::new("sh")
        .arg("-c")
        .arg(command.replace("cargo xtask", BIN))
        .dir(&empty)
        .env_remove("KUBE_ROOT")
        .env("HOME", &empty)
        .env_remove("XDG_CONFIG_HOME")
        .env("KUBE_TEST_CACHE", testkit::cache_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "`{command}`: {}", out.stderr);
    assert!(out.stderr.contains("vendor consistent"), "{}", out.stderr);
    // And a tool that finds no tree says how to get one, in one line.
    let none = Proc::new(BIN)
        .args(["check-vendor"])
        .dir(&empty)
        .env_remove("KUBE_ROOT")
        .env("HOME", &empty)
        .env("XDG_CONFIG_HOME", empty.join("no-config"))
        .env_remove("GOPATH")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(none.stderr.trim().lines().count() == 1 && none.stderr.contains("fetch-tree"), "{}", none.stderr);
}

#[test]
fn verbosity_and_the_log_prefix() {
    let root = fixture::scratch_tree("cli-verbose", &Spec::era_b());
    let is_log = |l: &str| {
        let b = l.as_bytes();
        l.starts_with("+++ [")
            && b.len() > 20
            && b[5..9].iter().all(u8::is_ascii_digit)
            && b[9] == b' '
            && &l[12..13] == ":"
            && &l[15..16] == ":"
            && &l[18..20] == "] "
    };
    // Default level 1: status lines, each with the scripts' prefix; data only on stdout.
    let out = xtask(&root, &["bump-go", "--check"], None);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.lines().any(|l| is_log(l) && l.contains("every Go version carrier says 1.15.5")),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    // -q and KUBE_VERBOSE=0: no status lines (warnings, `!!!`, still show).
    for (args, v) in [(vec!["bump-go", "-q", "--check"], None), (vec!["bump-go", "--check"], Some("0"))] {
        let out = xtask(&root, &args, v);
        assert!(!out.stderr.lines().any(|l| l.starts_with("+++")), "{args:?} {v:?}: {}", out.stderr);
        assert!(out.stderr.lines().all(|l| l.starts_with("!!! [")), "{args:?} {v:?}: {}", out.stderr);
    }
    // -v (or KUBE_VERBOSE=2): the tree found and the commands run are shown.
    for (args, v) in [(vec!["check-vendor", "-v"], None), (vec!["check-vendor"], Some("2"))] {
        let out = xtask(&root, &args, v);
        assert!(
            out.stderr.lines().any(|l| is_log(l) && l.contains("tree ") && l.contains("era B")),
            "{args:?} {v:?}: {}",
            out.stderr
        );
    }
    // A usage error: one line on stderr naming the tool, exit 2, nothing on stdout.
    let out = xtask(&root, &["bump-go", "--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("bump-go-version: error: "), "{}", out.stderr);
}

/// Each tool's help fits one screen and points to its page, which exists and names the tool.
#[test]
fn help_is_one_screen_and_points_to_a_page_that_exists() {
    let docs = camino::Utf8Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"));
    for tool in xtask::TOOLS {
        let help = tool.help();
        assert!(help.lines().count() <= 25, "{}: {} lines of help", tool.name, help.lines().count());
        let page_name = format!("docs/{}.md", tool.name);
        assert!(help.contains(&page_name), "{}: the help names its page", tool.name);
        let page = std::fs::read_to_string(docs.join(format!("{}.md", tool.name))).unwrap();
        assert!(page.starts_with(&format!("# {}\n", tool.name)), "{page_name}");
    }
}

/// The help lists every flag the tool declares, with its value and environment variable, and
/// the declarations hold together: no flag twice, none without help, and no `--flag` named in
/// the synopsis or notes that the tool does not declare (a renamed flag left behind).
#[test]
fn help_comes_from_sound_declarations() {
    for tool in xtask::TOOLS {
        assert_eq!(tool.problems(), Vec::<String>::new());
        let help = tool.help();
        for f in tool.flags {
            let line = help.lines().find(|l| l.starts_with(&format!("  {} ", f.synopsis()))).unwrap_or_else(|| {
                panic!("{}: no help line for {}:\n{help}", tool.name, f.synopsis());
            });
            assert!(line.len() > f.synopsis().len() + 4, "{}: {line}", tool.name);
            if let Some(e) = f.env {
                assert!(help.contains(&format!("[env: {e}]")), "{}: {} without its {e}", tool.name, f.name);
            }
        }
    }
}

/// Every page's generated part is what `cargo xtask docs` writes now: a flag added, renamed or
/// reworded in its declaration fails here until the pages are regenerated.
#[test]
fn every_page_matches_the_declarations() {
    let root = camino::Utf8Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let differ = xtask::docs::update(root, false).unwrap();
    assert!(differ.is_empty(), "run `cargo xtask docs`:\n{}", differ.join("\n"));
    let out = Proc::new(BIN).args(["docs", "--check"]).output().unwrap();
    assert_eq!((out.status.code(), out.stdout.as_str()), (Some(0), ""), "{}", out.stderr);
}

/// `docs --check` names the first line of a page that drifted and changes nothing; `docs` puts
/// the generated part back and keeps the hand-written prose around it.
#[test]
fn docs_check_finds_a_drifted_page_and_docs_repairs_it() {
    let kit = camino::Utf8Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let copy = testkit::scratch("cli-docs");
    std::fs::create_dir_all(copy.join("docs")).unwrap();
    for tool in xtask::TOOLS {
        let name = format!("docs/{}.md", tool.name);
        std::fs::copy(kit.join(&name), copy.join(&name)).unwrap();
    }
    let page = copy.join("docs/doctor.md");
    let good = std::fs::read_to_string(&page).unwrap();
    let drifted = good.replace("  --docker  ", "  --dockr   ").replace("## How it works", "## How it works\n\nMine.");
    assert_ne!(drifted, good);
    std::fs::write(&page, &drifted).unwrap();
    let differ = xtask::docs::update(&copy, false).unwrap();
    assert_eq!(differ.len(), 1, "{differ:?}");
    assert!(differ[0].starts_with("docs/doctor.md:") && differ[0].contains("-  --dockr "), "{}", differ[0]);
    assert!(differ[0].contains("+  --docker "), "{}", differ[0]);
    assert_eq!(std::fs::read_to_string(&page).unwrap(), drifted, "--check changed the page");
    assert_eq!(xtask::docs::update(&copy, true).unwrap().len(), 1);
    let fixed = std::fs::read_to_string(&page).unwrap();
    assert_eq!(fixed, good.replace("## How it works", "## How it works\n\nMine."));
    assert!(xtask::docs::update(&copy, false).unwrap().is_empty());
}

/// A remembered tree is what a tool uses when none is given (`--explain-tree` says so), and
/// `fetch-tree --forget` forgets it. The config directory is private to the test.
#[test]
fn a_remembered_tree_is_used_and_forgotten() {
    let tree = fixture::scratch_tree("cli-remembered", &Spec::era_b());
    let tree = camino::Utf8PathBuf::from_path_buf(std::fs::canonicalize(&tree).unwrap()).unwrap();
    let home = fixture::scratch_dir("cli-remembered-home");
    let config = home.join("xdg-config");
    let env = |k: &str| match k {
        "XDG_CONFIG_HOME" => Some(config.to_string()),
        _ => None,
    };
    kube_tree::remember::remember(&tree, &env).unwrap();
    let run = |args: &[&str]| {
        Proc::new(BIN)
            .args(args)
            .dir(&home)
            .env_remove("KUBE_ROOT")
            .env_remove("GOPATH")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &config)
            .output()
            .unwrap()
    };
    let out = run(&["check-vendor", "--explain-tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains(tree.as_str()) && out.stdout.contains("remembered in"), "{}", out.stdout);
    let out = run(&["fetch-tree", "--forget"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("forgot") && !config.join("k8s-build-kit/tree").exists(), "{}", out.stderr);
    let out = run(&["check-vendor", "--explain-tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stdout);
    assert!(out.stderr.contains("no Kubernetes tree found") && out.stderr.contains("fetch-tree"), "{}", out.stderr);
}

/// A mistyped tool name or flag gets the closest known one; a word that is no typo gets none.
#[test]
fn did_you_mean_for_tools_and_flags() {
    let root = fixture::scratch_tree("cli-typo", &Spec::era_b());
    let out = xtask(&root, &["chek-vendor"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("unknown tool `chek-vendor` (did you mean `check-vendor`?)"), "{}", out.stderr);
    let out = xtask(&root, &["compile"], None);
    assert!(out.status.code() == Some(2) && !out.stderr.contains("did you mean"), "{}", out.stderr);
    let out = xtask(&root, &["check-vendor", "--dryrun"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("`--dryrun` (did you mean `--dry-run`?)"), "{}", out.stderr);
    let out = xtask(&root, &["check-vendor", "--kube-rot", "x"], None);
    assert!(out.stderr.contains("did you mean `--kube-root`?"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

/// A dry run prints its plan: the steps it would take, never a time for what was not done.
#[test]
fn a_dry_run_prints_the_plan_without_timings() {
    let root = fixture::scratch_tree("cli-dry", &Spec::era_b());
    let out = Proc::new(BIN)
        .args(["run-dockerized", "--dry-run", "--kube-root", root.as_str(), "make", "WHAT=cmd/kubectl"])
        .dir(&root)
        .env("KUBE_CROSS_IMAGE", "k8s-build-kit-test-dry/kube-cross")
        .env_remove("KUBE_VERBOSE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("would be: "), "{}", out.stderr);
    assert!(!out.stderr.contains(" done in "), "{}", out.stderr);
    assert!(!out.stderr.contains(" ..."), "{}", out.stderr);
}
