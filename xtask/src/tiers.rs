//! `cargo xtask test [--full]`: the kit's test suite in its two tiers, as the README's Tests
//! section describes them. Plain cargo test underneath, so the two commands stay typeable by hand.
//! And `cargo xtask bench`: plain cargo bench of the bench target `kit`.

use kube_tree::proc::Proc;

pub const USAGE: &str = "\
test: run the kit's tests

Usage: cargo xtask test [--full] [--jobs N] [-- HARNESS-ARGS...]

  (no flag)  the fast tier: cargo test --workspace --locked (unit, property, generated trees,
             CLI, the hostile corpus on generated trees; no root, no engine, no network)
  --full     the full tier: cargo test --workspace --locked --no-fail-fast -- --include-ignored
             (also the real v1.20.2 tree, docker, podman, a second dockerd: see the README's
             Tests section); a missing prerequisite fails the test that needs it, naming it
  --jobs N   run N test binaries at a time (cargo runs them one after another), the longest
             known first, each one's output printed whole when it ends, a table of their times
             at the end; no fail-fast (for machines with cores to spare: on 2 cores the
             engine tests are CPU-bound and two at a time was slower)

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

/// The arguments of `cargo` for `cargo xtask bench ARGS`.
pub fn bench_args(words: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["bench", "--locked", "-p", "xtask", "--bench", "kit", "--"].map(String::from).to_vec();
    a.extend(words.iter().cloned());
    a
}

/// `cargo xtask bench ARGS`: the benchmarks live in a bench target (they need testkit, which the
/// dispatcher does not link), built and run by cargo in the kit's checkout.
pub fn bench(words: &[String]) -> i32 {
    cargo("bench", bench_args(words))
}

/// Runs cargo with `args` in the kit's checkout, the terminal its own; returns its exit code.
fn cargo(what: &str, args: Vec<String>) -> i32 {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    match Proc::new(cargo).args(args).dir(root).run_interactive() {
        Ok(status) => status.code().unwrap_or(130),
        Err(e) => {
            eprintln!("xtask {what}: error: {e}");
            2
        }
    }
}

/// `cargo xtask test`'s own arguments (before `--`).
#[derive(Debug, PartialEq, Eq)]
pub struct TestArgs {
    pub full: bool,
    pub jobs: usize,
}

impl TestArgs {
    pub fn parse(words: &[String]) -> Result<TestArgs, String> {
        let mut args = pico_args::Arguments::from_vec(words.iter().map(Into::into).collect());
        let full = args.contains("--full");
        let jobs = args
            .opt_value_from_fn("--jobs", |v: &str| match v.parse::<usize>() {
                Ok(n) if (1..=16).contains(&n) => Ok(n),
                _ => Err(format!("--jobs `{}`: a number from 1 to 16", v.escape_debug())),
            })
            .map_err(|e| e.to_string())?
            .unwrap_or(1);
        let rest = args.finish();
        if !rest.is_empty() {
            return Err(format!("unexpected arguments {rest:?} (see --help)"));
        }
        Ok(TestArgs { full, jobs })
    }
}

pub fn run(words: &[String]) -> i32 {
    let (ours, extra) = match words.iter().position(|w| w == "--") {
        Some(i) => (&words[..i], &words[i + 1..]),
        None => (words, &[][..]),
    };
    let args = match TestArgs::parse(ours) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xtask test: error: {e}");
            return 2;
        }
    };
    if args.jobs == 1 {
        return cargo("test", cargo_args(args.full, extra));
    }
    let mut harness: Vec<String> = if args.full { vec!["--include-ignored".into()] } else { Vec::new() };
    harness.extend(extra.iter().cloned());
    match crate::lanes::run(args.jobs, &harness) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask test: error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{bench_args, cargo_args, TestArgs};

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

    #[test]
    fn test_arguments_are_checked() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(TestArgs::parse(&w("")), Ok(TestArgs { full: false, jobs: 1 }));
        assert_eq!(TestArgs::parse(&w("--full --jobs 2")), Ok(TestArgs { full: true, jobs: 2 }));
        for bad in ["--jobs 0", "--jobs x", "--jobs 99", "--fast", "--jobs"] {
            assert!(TestArgs::parse(&w(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn bench_is_cargo_bench_of_the_kit_target() {
        let words = vec!["check-vendor".to_string(), "--rounds".to_string(), "3".to_string()];
        assert_eq!(bench_args(&words).join(" "), "bench --locked -p xtask --bench kit -- check-vendor --rounds 3");
    }
}
