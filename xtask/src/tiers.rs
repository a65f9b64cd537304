//! `cargo xtask test [--full]`: the kit's test suite in its two tiers, as the README's Tests
//! section describes them. Plain cargo test underneath, so the two commands stay typeable by hand.

use kube_tree::proc::Proc;

pub const USAGE: &str = "\
test: run the kit's tests

Usage: cargo xtask test [--full] [-- HARNESS-ARGS...]

  (no flag)  the fast tier: cargo test --workspace --locked (unit, property, generated trees,
             CLI, the hostile corpus on generated trees; no root, no engine, no network)
  --full     the full tier: cargo test --workspace --locked --no-fail-fast -- --include-ignored
             (also the real v1.20.2 tree, docker, podman, a second dockerd: see the README's
             Tests section); a missing prerequisite fails the test that needs it, naming it

Words after `--` go to every test binary (a test name filters, as with cargo test).
";

/// The arguments of `cargo` for a tier, with `extra` for the test harness.
pub fn cargo_args(full: bool, extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["test", "--workspace", "--locked"].map(String::from).to_vec();
    if full {
        a.push("--no-fail-fast".into());
    }
    if full || !extra.is_empty() {
        a.push("--".into());
    }
    if full {
        a.push("--include-ignored".into());
    }
    a.extend(extra.iter().cloned());
    a
}

pub fn run(words: &[String]) -> i32 {
    let (ours, extra) = match words.iter().position(|w| w == "--") {
        Some(i) => (&words[..i], &words[i + 1..]),
        None => (words, &[][..]),
    };
    let full = match ours {
        [] => false,
        [f] if f == "--full" => true,
        _ => {
            eprintln!("xtask test: error: unexpected arguments {ours:?} (see --help)");
            return 2;
        }
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    match Proc::new(cargo).args(cargo_args(full, extra)).dir(root).run_interactive() {
        Ok(status) => status.code().unwrap_or(130),
        Err(e) => {
            eprintln!("xtask test: error: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cargo_args;

    #[test]
    fn each_tier_is_the_documented_cargo_command() {
        assert_eq!(cargo_args(false, &[]).join(" "), "test --workspace --locked");
        assert_eq!(cargo_args(true, &[]).join(" "), "test --workspace --locked --no-fail-fast -- --include-ignored");
        let extra = vec!["hostile".to_string()];
        assert_eq!(cargo_args(false, &extra).join(" "), "test --workspace --locked -- hostile");
        assert_eq!(
            cargo_args(true, &extra).join(" "),
            "test --workspace --locked --no-fail-fast -- --include-ignored hostile"
        );
    }
}
