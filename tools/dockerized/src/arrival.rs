//! An arrival-timed data container (one seeded from another worktree's, see [`crate::seed`]):
//! how rsync compares its files with the tree's, which generated files its first sync keeps,
//! the generated files a sync wrote (aged by `rsync`'s `Job::age` so that make regenerates
//! them), and the generated files a copy-out looked at, dated now in the tree.
//!
//! Its files keep the times they had in the seed while their bytes are the same, and a file that
//! differs is written at the time of the sync. When an input and the output generated from it
//! both differ (a branch whose committed generated file changed, with an edit to its types on
//! top), rsync writes them in its own order, not in the order they were made, and the output
//! could look newer than the edit. So every generated file a sync writes is given a time older
//! than any input (the epoch's first second): make generates it again if it is one of its
//! targets, and a file it does not generate keeps the tree's bytes.

use crate::containers::Listed;
use crate::itemized::Item;
use crate::labels::TIMES_ARRIVAL;
use kube_tree::{Cap, Fail, Tree};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The names of the generated files the build makes (v1.20's deepcopy, defaults, conversion,
/// openapi and prerelease-lifecycle code).
pub(crate) const GENERATED: &[&str] = &["zz_generated.*"];

/// How a data container's files carry their times, and so how rsync compares them with the
/// tree's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Times {
    /// The host's: every sync sets them (`--archive`), and size and time tell a change.
    Host,
    /// The times they had in the data container it was seeded from (another worktree's), or of
    /// their arrival: compared by content and never given the host's on the way in, so that
    /// make sees exactly what changed since the seed's last build.
    Arrival,
}

impl Times {
    /// What the container's listing says (its times label).
    pub(crate) fn of(listed: Option<&Listed>) -> Times {
        match listed {
            Some(l) if l.times == TIMES_ARRIVAL => Times::Arrival,
            _ => Times::Host,
        }
    }

    /// rsync's words on the way in: by content, no time set, and what was written itemized (for
    /// [`written_generated`]).
    pub(crate) fn sync_in_args(self) -> &'static [&'static str] {
        match self {
            Times::Host => &[],
            Times::Arrival => &["--checksum", "--no-times", "--out-format=%i %n"],
        }
    }

    /// On the way out: by content, and no time set (the container's are the seed's, older than
    /// the worktree's own files), so that a source the filters pass (`types.go`, `*.pb.go`) with
    /// the same bytes is left as it is; then [`date_generated`].
    pub(crate) fn copy_out_args(self) -> &'static [&'static str] {
        match self {
            Times::Host => &[],
            Times::Arrival => &["--checksum", "--no-times"],
        }
    }
}

/// After an arrival-timed copy-out (`itemized`, every entry it looked at): the generated files
/// it looked at are dated now in the tree, after the binaries it wrote. The build has just
/// made them from exactly the tree's sources, and make outside the container (bind mode, a
/// local build) must see them newer than those sources and than the generators, as a
/// host-timed copy-out leaves them; otherwise it generates them all again. Their lines come
/// back marked as rewritten (`>f..t......`), so that the run's records take their new stamps.
pub(crate) fn date_generated(tree: &Tree, itemized: &str) -> Result<String> {
    let mut out = String::with_capacity(itemized.len());
    let generated = generated_patterns();
    for line in itemized.lines() {
        let dated = match Item::parse(line) {
            Some(item) if item.is_file() && is_generated(&generated, item.name) => {
                tree.confined(item.name)?.touch()?;
                format!(">f..t...... {}", item.name)
            }
            _ => line.to_string(),
        };
        out.push_str(&dated);
        out.push('\n');
    }
    Ok(out)
}

/// [`GENERATED`], compiled once per answer read.
fn generated_patterns() -> Vec<glob::Pattern> {
    GENERATED.iter().map(|g| glob::Pattern::new(g).expect("GENERATED holds valid patterns")).collect()
}

/// Whether `path` names a generated file (its base name matches one of `patterns`).
fn is_generated(patterns: &[glob::Pattern], path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    patterns.iter().any(|p| p.matches(base))
}

/// The first sync's protect rules: the generated files git ignores in this tree (a new
/// worktree cannot have them, and the seed's spare their generation), from the tree's
/// `.gitignore` lines that name generated files; what it tracks is the branch's to keep or
/// delete. gitignore's last match wins and rsync's first, so the order is reversed; `!PATH`
/// becomes a risk rule (not protected). A line rsync could read otherwise is left out.
pub(crate) fn protect_rules(tree: &Tree) -> Result<Vec<String>> {
    let text = tree.read_text(".gitignore", Cap::SCRIPT)?.unwrap_or_default();
    let mut rules = Vec::new();
    for line in text.lines().map(str::trim) {
        let (rule, pattern) = match line.strip_prefix('!') {
            Some(p) => ("R", p),
            None => ("P", line),
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-*/".contains(c);
        if line.starts_with('#') || !pattern.contains("zz_generated") || !pattern.chars().all(plain) {
            continue;
        }
        // A gitignore pattern with a slash inside is anchored at the tree's root.
        let anchored = pattern.trim_end_matches('/').contains('/') && !pattern.starts_with('/');
        rules.push(format!("--filter={rule} {}{pattern}", if anchored { "/" } else { "" }));
    }
    rules.reverse();
    Ok(rules)
}

/// The generated files a sync wrote, from its itemized lines (`<f... PATH`: sent to the data
/// container, as a push itemizes them; `>f`, received, for a pull).
pub(crate) fn written_generated(itemized: &str) -> Vec<String> {
    let generated = generated_patterns();
    Item::all(itemized)
        .filter(|i| i.is_file() && i.transferred() && is_generated(&generated, i.name))
        .map(|i| i.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{protect_rules, written_generated};
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::Tree;

    #[test]
    fn the_first_sync_protects_what_git_ignores_of_the_generated_files() {
        let root = scratch_tree("dockerized-arrival-ignore", &Spec::era_b());
        // v1.20's lines, with a comment and a line rsync could misread.
        let ignore = "#zz_generated.*\nzz_generated.openapi.go\nzz_generated_*_test.go\n\
                      !staging/src/k8s.io/kube-aggregator/pkg/generated/openapi/zz_generated.openapi.go\n\
                      /_output\nzz_generated x;y\n";
        std::fs::write(root.join(".gitignore"), ignore).unwrap();
        let rules = protect_rules(&Tree::open(&root).unwrap()).unwrap();
        assert_eq!(
            rules,
            [
                "--filter=R /staging/src/k8s.io/kube-aggregator/pkg/generated/openapi/zz_generated.openapi.go",
                "--filter=P zz_generated_*_test.go",
                "--filter=P zz_generated.openapi.go",
            ]
        );
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }

    #[test]
    fn a_copy_out_dates_the_generated_files_it_looked_at_and_says_so() {
        let root = scratch_tree("dockerized-arrival-date", &Spec::era_b());
        let tree = Tree::open(&root).unwrap();
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        for f in ["a/zz_generated.deepcopy.go", "a/types.go"] {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "x").unwrap();
            filetime::set_file_mtime(root.join(f), old).unwrap();
        }
        let itemized = ".f          a/zz_generated.deepcopy.go\n.f          a/types.go\n.d          a/\n";
        let out = super::date_generated(&tree, itemized).unwrap();
        assert_eq!(out, ">f..t...... a/zz_generated.deepcopy.go\n.f          a/types.go\n.d          a/\n");
        let mtime =
            |f: &str| filetime::FileTime::from_last_modification_time(&std::fs::metadata(root.join(f)).unwrap());
        assert!(mtime("a/zz_generated.deepcopy.go") > old, "dated now");
        assert_eq!(mtime("a/types.go"), old, "a source keeps its time");
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }

    #[test]
    fn the_generated_files_a_sync_wrote_are_told_from_the_rest() {
        let itemized = "<f.st...... pkg/apis/core/v1/zz_generated.conversion.go\n\
                        <f+++++++++ pkg/generated/openapi/zz_generated.openapi.go\n\
                        <fcs....... pkg/apis/core/v1/types.go\n\
                        cL+++++++++ pkg/zz_generated.link -> x\n\
                        .d..t...... pkg/apis/\n\
                        *deleting   pkg/old/zz_generated.deepcopy.go\n";
        assert_eq!(
            written_generated(itemized),
            ["pkg/apis/core/v1/zz_generated.conversion.go", "pkg/generated/openapi/zz_generated.openapi.go"]
        );
    }
}
