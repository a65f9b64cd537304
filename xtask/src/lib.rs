//! `cargo xtask`: lists the tools, dispatches `cargo xtask <tool> ...` to the tool's library, and
//! hosts the kit's own chores (`bench`, `docs`, `fetch-tree`, `test`).

pub mod docs;
mod lanes;
mod tiers;

use kube_tree::cli::{self, Tool};
use std::ffi::OsString;

/// Every tool of the kit, in listing order.
pub const TOOLS: &[&Tool] = &[
    &setup_go::TOOL,
    &setup_gopath::TOOL,
    &check_vendor::TOOL,
    &bump_go_version::TOOL,
    &kube_build::TOOL,
    &doctor::TOOL,
    &run_dockerized::TOOL,
    &copy_output::TOOL,
    &make_clean::TOOL,
    &build_shell::TOOL,
];

/// Chores that are not tools of their own: (name, summary).
const CHORES: &[(&str, &str)] = &[
    ("bench", BENCH_SUMMARY),
    ("docs", "write each docs/<tool>.md's flags from the tools' declarations (--check: exit 1 if one differs)"),
    ("test", "the kit's tests: the fast tier, or `--full` (real tree, engines; see the README's Tests)"),
    (
        "fetch-tree",
        "fetch (once) and print Debian's kubernetes v1.20.2 source tree (--go: and its Go 1.15), used by the tests",
    ),
];

/// The benchmarks, written once for `bench`'s usage and the listing.
macro_rules! bench_names {
    () => {
        "check-vendor|bump-go|build|build-full|dockerized|dockerized-era-c|shared-cache|new-branch|second-worktree|second-checkout|overhead|fanout"
    };
}

/// `cargo xtask bench`'s usage; the benchmarks themselves are the bench target `kit`
/// (xtask/benches/kit), which `tiers::bench` runs.
pub const BENCH_USAGE: &str =
    concat!("usage: cargo xtask bench <", bench_names!(), "> [--rounds N>=3] [--tree DIR] [--keep]");
const BENCH_SUMMARY: &str = concat!("benchmarks on the real tree: `bench ", bench_names!(), " [--rounds N]`");

const FETCH_TREE_USAGE: &str = "\
fetch-tree: fetch (once) Debian's kubernetes source package (v1.20.2), remember it, print its path

Usage: cargo xtask fetch-tree [--go] [--rootfs] | cargo xtask fetch-tree --forget

  --go       also fetch Debian bullseye's golang-1.15 (the Go that tree was made for) and print
             its bin directory on a second line; setup-go finds it without a network
  --rootfs   also debootstrap the Debian rootfs the full tier's stand-in kube-cross is built
             from (root; debootstrap), so the first engine test does not wait for it
  --forget   forget the remembered tree (the tree itself stays in the cache)

The tree is remembered in $XDG_CONFIG_HOME/k8s-build-kit/tree (else ~/.config/k8s-build-kit/tree):
the tools use it when --kube-root, KUBE_ROOT and the current directory give none.
Cached under $KUBE_TEST_CACHE, else ~/.cache/k8s-build-kit; needs apt-get and dpkg-source (dpkg-dev).
Then: cargo xtask check-vendor
";

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn forget_tree() -> i32 {
    match kube_tree::remember::forget(&process_env) {
        Ok(Some(record)) => {
            eprintln!("+++ forgot the remembered tree ({record} removed)");
            0
        }
        Ok(None) => {
            eprintln!("+++ no tree was remembered");
            0
        }
        Err(e) => {
            eprintln!("xtask fetch-tree: error: {e}");
            2
        }
    }
}

fn fetch_tree(args: &[String]) -> i32 {
    if let [f] = args {
        if f == "--forget" {
            return forget_tree();
        }
    }
    let (mut go, mut rootfs) = (false, false);
    for a in args {
        match a.as_str() {
            "--go" if !go => go = true,
            "--rootfs" if !rootfs => rootfs = true,
            _ => {
                eprintln!("xtask fetch-tree: error: unexpected arguments {args:?} (see --help)");
                return 2;
            }
        }
    }
    let res = realtree::real_tree().and_then(|t| {
        let go = if go { Some(realtree::tree_go()?) } else { None };
        if rootfs {
            eprintln!("+++ the stand-in's rootfs: {}", realtree::stand_in_rootfs()?);
        }
        Ok((t, go))
    });
    match res {
        Ok((t, go)) => {
            // Remembering is a convenience: a read-only config is said, not a failed fetch.
            match kube_tree::remember::remember(&t, &process_env) {
                Ok(record) => eprintln!("+++ remembered in {record}: the tools use this tree when none is given"),
                Err(e) => eprintln!("!!! the tree is not remembered: {e}"),
            }
            println!("{t}");
            if let Some(go) = go {
                println!("{go}");
            }
            0
        }
        Err(e) => {
            eprintln!("xtask fetch-tree: error: {e}");
            2
        }
    }
}

pub fn find_tool(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().copied().find(|t| t.answers_to(name))
}

fn listing() -> String {
    let mut s = String::from("Usage: cargo xtask <tool> [args...]   |   cargo xtask help <tool>\n\nTools:\n");
    for t in TOOLS {
        let alias = if t.aliases.is_empty() { String::new() } else { format!(" ({})", t.aliases.join(", ")) };
        s += &format!("  {:<28} {}\n", format!("{}{alias}", t.name), t.summary);
    }
    s += "\nChores:\n";
    for (n, d) in CHORES {
        s += &format!("  {n:<28} {d}\n");
    }
    s
}

/// Runs `cargo xtask` with `args`; returns the exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    match words.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("list") => {
            print!("{}", listing());
            0
        }
        Some("help") => match words.get(1).and_then(|n| find_tool(n)) {
            Some(t) => {
                print!("{}", t.help());
                0
            }
            None => {
                eprintln!(
                    "xtask: error: help needs a tool name, one of: {}",
                    TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                );
                2
            }
        },
        Some("test") if words[1..].iter().take_while(|w| *w != "--").any(|w| w == "-h" || w == "--help") => {
            print!("{}", tiers::USAGE);
            0
        }
        Some("test") => tiers::run(&words[1..]),
        Some(chore @ ("bench" | "docs" | "fetch-tree")) if words[1..].iter().any(|w| w == "-h" || w == "--help") => {
            let usage = match chore {
                "bench" => BENCH_USAGE,
                "docs" => docs::USAGE,
                _ => FETCH_TREE_USAGE,
            };
            println!("{}", usage.trim_end());
            0
        }
        Some("bench") => tiers::bench(&words[1..]),
        Some("docs") => docs::run(&words[1..]),
        Some("fetch-tree") => fetch_tree(&words[1..]),
        Some(name) => match find_tool(name) {
            Some(t) => cli::main(t, args[1..].to_vec()),
            None => {
                let known = TOOLS.iter().flat_map(|t| std::iter::once(t.name).chain(t.aliases.iter().copied()));
                let known = known.chain(CHORES.iter().map(|c| c.0)).chain(["help", "list"]);
                let hint = kube_tree::suggest::did_you_mean(name, known);
                eprintln!("xtask: error: unknown tool `{}`{hint}; `cargo xtask` lists them", name.escape_debug());
                2
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_and_alias_resolves_uniquely() {
        let mut names = Vec::new();
        for t in TOOLS {
            names.push(t.name);
            names.extend(t.aliases);
        }
        for n in &names {
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n} is ambiguous");
            assert!(find_tool(n).is_some());
        }
        assert!(listing().contains("check-vendor (vendor)"));
    }

    #[test]
    fn unknown_tool_is_a_usage_error() {
        assert_eq!(run(vec!["no-such-tool".into()]), 2);
        assert_eq!(run(vec!["help".into(), "nope".into()]), 2);
    }
}
