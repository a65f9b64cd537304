//! A new data container, seeded from another one: this tree's on another branch, else another
//! tree's, a worktree of the same repository (`git worktree add`), of the same image version.
//!
//! The scripts name the data container after `HOSTNAME:KUBE_ROOT:branch`, so the first build on a
//! new branch or in a new worktree starts from empty volumes: the shared Go cache makes its
//! compiles warm, but a v1.20 tree's code generation (its generators built, then every package's
//! files generated, minutes) runs whole, because make sees generator binaries newer than every
//! generated file. Another data container holds all of that, with the times make compares.
//!
//! * This tree on another branch: the same checkout, so its files carry the same mtimes on the
//!   host, in the sibling and, after the copy, here. The sync that follows moves only what the
//!   branch changed, with the host's times, and make regenerates only for those.
//! * Another worktree of the same repository (git's common directory), there and the user's:
//!   its files carry other times than this tree's (a worktree is written when it is checked
//!   out). The data container is labelled arrival-timed ([`crate::arrival::Times`]):
//!   every sync in compares by content and sets no time, so a file keeps the time it had in the
//!   seed while its bytes are the same, and one that differs is written anew, newer than
//!   everything generated from it (a copy-out compares by content too; see
//!   [`crate::arrival`] for the times it leaves in the tree). Make then sees what it would see had this tree's changes been
//!   made in the other tree's container, and regenerates for those alone ([`crate::arrival`]:
//!   also the generated files a sync writes, and the first sync's protect rules). The copy drops
//!   the generated files of packages this tree has no directory for, which would come out into it.
//!
//! Never a seed: a data container made with `--cache private` (its label), so that a build of
//! code the user has not read, run so, reaches no other branch or worktree.
//!
//! What is copied: the seed's whole volume but the shared Go cache's mount point (a private
//! cache there is the seed's) and the seed's built binaries (in the output and in the
//! container GOPATH's `bin`) other than the code generators the tree's
//! `Makefile.generated_files` names: a copy-out must only ever bring back what this tree's
//! builds made.

use crate::arrival::{Times, GENERATED};
use crate::cache::{valid_volume_name, CACHE_SUBPATH};
use crate::containers::{Containers, Listed};
use crate::job::Job;
use crate::labels::CACHE_PRIVATE;
use crate::layout::REMOTE_ROOT;
use crate::sync::UNSYNCED;
use kube_tree::proc::interrupted;
use kube_tree::{log, Cap, Fail, Tree};
use std::time::Duration;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Where the seed's volume is mounted in the copying container.
const SEED_MOUNT: &str = "/kit-seed";

/// The tree's make rules for its code generation (eras A and B up to v1.2x).
const GENERATED_FILES_MAKEFILE: &str = "build/root/Makefile.generated_files";

/// What seeding a new data container came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seeded {
    /// Copied from this data container.
    From(String),
    /// Nothing to seed from (or the run keeps a private cache): it starts empty.
    NoSibling,
    /// The copy failed: the caller makes the data container again, empty.
    Failed,
}

/// The data container a new one is seeded from.
pub(crate) struct Seed<'c> {
    pub listed: &'c Listed,
    /// Another tree's (a second worktree or checkout), not this tree's on another branch.
    pub other_tree: bool,
}

/// The data container to seed this tree's new one from, of the same image version, exited 0,
/// not made with `--cache private`, with no build of its own running, the newest of them (`ps -a` lists newest first): this
/// tree's on another branch, else another tree's that `ours` accepts (a worktree of the same
/// repository, there and the user's).
pub(crate) fn pick<'c>(
    containers: &'c Containers,
    tree: &str,
    names_hash: &str,
    version: &str,
    ours: impl Fn(&str) -> bool,
) -> Option<Seed<'c>> {
    let running: Vec<&str> = containers.0.iter().filter(|c| c.state == "running").map(|c| c.name.as_str()).collect();
    let usable = |c: &&Listed| {
        let Some(hash) = c.name.strip_prefix("kube-build-data-").and_then(|r| r.strip_suffix(&format!("-{version}")))
        else {
            return false;
        };
        let builds = format!("kube-build-{hash}-{version}");
        hash.len() == 10
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && hash != names_hash
            && !tree.is_empty()
            && !c.tree.is_empty()
            && c.exit_code() == Some(0)
            && c.cache != CACHE_PRIVATE
            && !running.contains(&builds.as_str())
    };
    let listed = || containers.0.iter().filter(usable);
    if let Some(c) = listed().find(|c| c.tree == tree) {
        return Some(Seed { listed: c, other_tree: false });
    }
    listed().find(|c| ours(&c.tree)).map(|c| Seed { listed: c, other_tree: true })
}

/// The repository a checkout belongs to: git's common directory, which every worktree of one
/// repository shares (None: not a git checkout, or a git too old to say).
fn git_common_dir(path: &str) -> Option<String> {
    let out = kube_tree::proc::Proc::new("git")
        .args(["-C", path, "rev-parse", "--path-format=absolute", "--git-common-dir"])
        .timeout(kube_tree::proc::PROBE)
        .output()
        .ok()?;
    let dir = out.stdout.trim();
    (out.success() && dir.starts_with('/')).then(|| std::fs::canonicalize(dir).ok()?.to_str().map(String::from))?
}

/// Whether `path` is a directory of the user `uid` (a tree a seed may come from).
pub(crate) fn users_tree(path: &str, uid: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    path.starts_with('/') && std::fs::metadata(path).is_ok_and(|m| m.is_dir() && m.uid().to_string() == uid)
}

/// The code generators `Makefile.generated_files` builds into its `$(BIN_DIR)` (empty for a
/// tree without one: later trees keep their generated code in git).
pub(crate) fn generators(tree: &Tree) -> Result<Vec<String>> {
    let text = tree.read_text(GENERATED_FILES_MAKEFILE, Cap::SCRIPT)?.unwrap_or_default();
    let mut names: Vec<String> = text
        .split("$(BIN_DIR)/")
        .skip(1)
        .map(|rest| rest.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).next().unwrap_or(""))
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The copy's rsync filters: no cache, and of the binaries only the generators, in the output
/// and in the container GOPATH's `bin` (where go installs them: the tree's `place_bins` copies
/// everything there into the output, so a sibling's binary left there would come out too).
pub(crate) fn filters(generators: &[String]) -> Vec<String> {
    let mut f = vec![format!("--filter=- /{CACHE_SUBPATH}/")];
    for g in generators {
        f.push(format!("--filter=+ /_output/dockerized/bin/*/*/{g}"));
        f.push(format!("--filter=+ /_output/dockerized/go/bin/{g}"));
    }
    f.push("--filter=- /_output/dockerized/bin/*/*/*".into());
    f.push("--filter=- /_output/dockerized/go/bin/**".into());
    f
}

/// The copy from another tree's volume, then its generated files that this tree has no
/// directory for removed (the packages this worktree does not have: they would come out into
/// it). The tree's directories come as the arguments (`./a/b`, `.`). Each step's failure fails
/// the copy (GNU find and xargs, as Debian's kube-cross has them), and the run starts cold.
fn across_script(filters: &[String]) -> String {
    let filters: Vec<String> = filters.iter().map(|f| kube_tree::proc::quote(f)).collect();
    let names: Vec<String> = GENERATED.iter().map(|g| format!("-name {}", kube_tree::proc::quote(g))).collect();
    format!(
        r#"set -e
rsync -a {filters} {SEED_MOUNT}/ {REMOTE_ROOT}/
cd {REMOTE_ROOT}
printf '%s\n' "$@" > /tmp/kit-dirs
find . \( -path ./_output -o -path ./.make -o -path ./.git -o -path ./_tmp \) -prune -o \( {names} \) -type f -printf '%h\t%p\n' > /tmp/kit-generated
awk -F '\t' 'NR == FNR {{ d[$0] = 1; next }} !($1 in d) {{ print $2 }}' /tmp/kit-dirs /tmp/kit-generated > /tmp/kit-orphans
xargs -r -d '\n' rm -f -- < /tmp/kit-orphans
"#,
        filters = filters.join(" "),
        names = names.join(" -o "),
    )
}

/// The tree's directories in the synced area, as `find` names them in the data container.
fn tree_dirs(tree: &Tree) -> Result<Vec<String>> {
    let mut dirs = vec![".".to_string()];
    kube_tree::walk::entries(&tree.root, UNSYNCED, |rel, md| {
        if md.is_dir() {
            dirs.push(format!("./{rel}"));
        }
    })?;
    Ok(dirs)
}

/// Where a new data container's seed is, once checked: its name, its sources' volume, whether it
/// is another tree's, and whether the new one is arrival-timed (see the module).
pub(crate) struct SeedSource {
    pub name: String,
    pub volume: String,
    pub other_tree: bool,
    pub arrival: bool,
}

impl Job<'_> {
    /// The data container to seed a new one from, when there is one and the run shares its Go
    /// cache (`--cache private` keeps the old cold start), with its volume.
    pub(crate) fn seed_source(&self, containers: &Containers) -> Result<Option<SeedSource>> {
        let (engine, setup) = (self.engine, self.setup);
        if setup.cache.is_none() {
            return Ok(None);
        }
        let uid = setup.user.split(':').next().unwrap_or("");
        // Asked only when this tree has no data container of its own to seed from.
        let repository = std::cell::OnceCell::new();
        let ours = |path: &str| {
            let mine = repository.get_or_init(|| git_common_dir(setup.tree.root.as_str()));
            users_tree(path, uid) && mine.is_some() && git_common_dir(path) == *mine
        };
        let Some(seed) = pick(containers, setup.tree.root.as_str(), &setup.names.hash, &setup.names.version, ours)
        else {
            return Ok(None);
        };
        let asked = engine.query(&[
            "inspect",
            "--format",
            &format!(
                "{{{{range .Mounts}}}}{{{{if eq .Destination \"{REMOTE_ROOT}\"}}}}{{{{.Name}}}}{{{{end}}}}{{{{end}}}}"
            ),
            &seed.listed.name,
        ])?;
        // A dry run asks nothing; otherwise no answer means the seed is gone since the listing.
        let volume = match asked {
            Some(v) => v,
            None if engine.dry_run => "SEED-VOLUME".into(),
            None => return Ok(None),
        };
        if !valid_volume_name(&volume) {
            log::warn(format!(
                "not seeding from {}: its volume is named `{}`",
                seed.listed.name,
                volume.escape_debug()
            ));
            return Ok(None);
        }
        // A seed that is arrival-timed itself (a worktree's, for a new branch of it) passes
        // that on: its files carry the times they arrived with, not this tree's.
        let arrival = seed.other_tree || Times::of(Some(seed.listed)) == Times::Arrival;
        Ok(Some(SeedSource { name: seed.listed.name.clone(), volume, other_tree: seed.other_tree, arrival }))
    }

    /// Seeds the data container just created from `seed`. After a failed copy the caller makes
    /// the data container again, empty: the build is cold, not wrong.
    pub(crate) fn seed_data_container(&self, seed: &SeedSource) -> Result<Seeded> {
        let (engine, setup) = (self.engine, self.setup);
        let helper = format!("kube-build-{}-seed-{}", setup.names.hash, setup.names.version);
        engine.destroy(&helper);
        let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--name".into(), helper.clone()];
        args.extend(setup.labels());
        args.extend(["--volumes-from".into(), setup.names.data.clone()]);
        args.extend(["--volume".into(), format!("{}:{SEED_MOUNT}:ro", seed.volume)]);
        args.push(setup.names.image.clone());
        let filters = filters(&generators(&setup.tree)?);
        let whose = if seed.other_tree { "another tree" } else { "this tree on another branch" };
        if seed.other_tree {
            args.extend(["sh".into(), "-c".into(), across_script(&filters), "seed".into()]);
            args.extend(if engine.dry_run { vec!["DIRS".to_string()] } else { tree_dirs(&setup.tree)? });
        } else {
            args.extend(["rsync".into(), "-a".into()]);
            args.extend(filters);
            args.extend([format!("{SEED_MOUNT}/"), format!("{REMOTE_ROOT}/")]);
        }
        let label = format!("seeding the new data container from {} ({whose})", seed.name);
        let p = engine.cmd(&args);
        if engine.planned(&p) {
            log::status(format!("would be {label}"));
            return Ok(Seeded::From(seed.name.clone()));
        }
        let step = log::Step::start(&label);
        let out = p.output_with_progress(&label, Duration::from_secs(15));
        if interrupted() {
            engine.destroy(&helper);
            engine.destroy(&setup.names.data);
            return Err(Fail::interrupted());
        }
        match out {
            Ok(o) if o.success() => {
                step.done();
                Ok(Seeded::From(seed.name.clone()))
            }
            failed => {
                let why = match failed {
                    Ok(o) => o.first_lines(2).replace('\n', " | "),
                    Err(e) => e.to_string(),
                };
                log::warn(format!("could not seed from {} ({why}): starting from empty volumes", seed.name));
                engine.destroy(&helper);
                Ok(Seeded::Failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{across_script, filters, generators, pick, users_tree, REMOTE_ROOT, SEED_MOUNT};
    use crate::containers::{Containers, Listed};
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::Tree;

    const V: &str = "5-v1.15.5-1";

    fn listing(rows: &[(&str, &str, &str, &str)]) -> Containers {
        let rows: Vec<Listed> = rows
            .iter()
            .map(|(name, tree, state, status)| Listed {
                id: format!("id-{name}"),
                name: name.to_string(),
                tree: tree.to_string(),
                state: state.to_string(),
                status: status.to_string(),
                ..Listed::default()
            })
            .collect();
        Containers::parse(&Containers::docker_text(&rows)).unwrap()
    }

    /// No other tree is the user's.
    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn the_seed_is_this_trees_other_branch_of_the_same_version_idle_and_whole() {
        let ours = "aaaaaaaaaa";
        let exited = "Exited (0) 2 minutes ago";
        let sibling = format!("kube-build-data-bbbbbbbbbb-{V}");
        let ok = listing(&[(&sibling, "/src/k", "exited", exited)]);
        assert_eq!(pick(&ok, "/src/k", ours, V, none).map(|c| c.listed.name.as_str()), Some(sibling.as_str()));
        // Another tree, another version, our own name, a failed one, a scripts' one (no label).
        for rows in [
            [(sibling.as_str(), "/src/other", "exited", exited)],
            [("kube-build-data-bbbbbbbbbb-5-v1.16.0-1", "/src/k", "exited", exited)],
            [(&format!("kube-build-data-{ours}-{V}") as &str, "/src/k", "exited", exited)],
            [(sibling.as_str(), "/src/k", "exited", "Exited (137) 2 minutes ago")],
            [(sibling.as_str(), "", "exited", exited)],
            [(&format!("kube-build-data-bbbbbbbbbb-x-{V}") as &str, "/src/k", "exited", exited)],
        ] {
            assert!(pick(&listing(&rows), "/src/k", ours, V, none).is_none(), "{rows:?}");
        }
        // A build of the sibling's running: its volume is being written.
        let busy = listing(&[
            (&format!("kube-build-bbbbbbbbbb-{V}"), "/src/k", "running", "Up 3 seconds"),
            (&sibling, "/src/k", "exited", exited),
        ]);
        assert!(pick(&busy, "/src/k", ours, V, none).is_none());
        // Of two, the newest (listed first).
        let newer = format!("kube-build-data-cccccccccc-{V}");
        let two = listing(&[(&newer, "/src/k", "exited", exited), (&sibling, "/src/k", "exited", exited)]);
        assert_eq!(pick(&two, "/src/k", ours, V, none).map(|c| c.listed.name.as_str()), Some(newer.as_str()));
        // Else another tree's, when that tree is the user's (a second worktree), never one of
        // another user's or of no tree (the scripts'); this tree's first, though older.
        let other = format!("kube-build-data-dddddddddd-{V}");
        let worktree = |p: &str| p == "/src/wt";
        let across = listing(&[(&other, "/src/wt", "exited", exited), (&sibling, "/src/k", "exited", exited)]);
        let s = pick(&across, "/src/k", ours, V, worktree).unwrap();
        assert!(!s.other_tree && s.listed.name == sibling, "this tree's first");
        let only = listing(&[(&other, "/src/wt", "exited", exited)]);
        let s = pick(&only, "/src/k", ours, V, worktree).unwrap();
        assert!(s.other_tree && s.listed.name == other);
        assert!(pick(&only, "/src/k", ours, V, none).is_none(), "not the user's tree");
        let mut private = listing(&[(&other, "/src/wt", "exited", exited)]);
        private.0[0].cache = "private".into();
        assert!(pick(&private, "/src/k", ours, V, worktree).is_none(), "a --cache private build's");
        let theirs = listing(&[(&other, "", "exited", exited)]);
        assert!(pick(&theirs, "/src/k", ours, V, |_| true).is_none(), "no tree label");
    }

    #[test]
    fn a_tree_is_the_users_when_its_directory_is_theirs() {
        let root = scratch_tree("dockerized-seed-owner", &Spec::era_b());
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(&root).unwrap().uid().to_string();
        assert!(users_tree(root.as_str(), &uid));
        assert!(!users_tree(root.as_str(), "4294967294"), "another user's");
        assert!(!users_tree(root.join("missing").as_str(), &uid));
        assert!(!users_tree("relative/path", &uid));
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }

    #[test]
    fn worktrees_of_one_repository_share_its_common_dir_and_other_checkouts_do_not() {
        let base = kube_tree::fixture::scratch_dir("dockerized-seed-repo");
        let git = |dir: &camino::Utf8Path, words: &[&str]| {
            let p = kube_tree::proc::Proc::new("git").args(["-c", "user.name=kit", "-c", "user.email=kit@invalid"]);
            p.args(words).dir(dir).read().unwrap()
        };
        let (main, other, plain) = (base.join("main"), base.join("other"), base.join("plain"));
        for d in [&main, &other, &plain] {
            std::fs::create_dir_all(d).unwrap();
        }
        for repo in [&main, &other] {
            git(repo, &["init", "-q"]);
            git(repo, &["commit", "-q", "--allow-empty", "-m", "x"]);
        }
        let wt = base.join("wt");
        git(&main, &["worktree", "add", "-q", wt.as_str()]);
        let of = |d: &camino::Utf8PathBuf| super::git_common_dir(d.as_str());
        assert!(of(&main).is_some());
        assert_eq!(of(&wt), of(&main), "a worktree is of its repository");
        assert_ne!(of(&other), of(&main), "another repository");
        assert_eq!(of(&plain), None, "not a checkout");
    }

    #[test]
    fn a_seed_across_trees_drops_generated_files_of_packages_this_tree_lacks() {
        // The script as the helper runs it, on a directory standing in for the two volumes.
        let base = kube_tree::fixture::scratch_dir("dockerized-seed-across");
        let (seed, root) = (base.join("seed"), base.join("root"));
        for f in ["a/x.go", "a/zz_generated.deepcopy.go", "gone/zz_generated.deepcopy.go", "_output/zz_generated.x"] {
            std::fs::create_dir_all(seed.join(f).parent().unwrap()).unwrap();
            std::fs::write(seed.join(f), "x").unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        let script =
            across_script(&filters(&[])).replace(SEED_MOUNT, seed.as_str()).replace(REMOTE_ROOT, root.as_str());
        // Its lists in the scratch directory, not the container's /tmp.
        let script = script.replace("/tmp/kit-", &format!("{base}/kit-"));
        let out = kube_tree::proc::Proc::new("sh").args(["-c", &script, "seed", ".", "./a"]).output().unwrap();
        assert!(out.success(), "{}", out.stderr);
        assert!(root.join("a/x.go").exists() && root.join("a/zz_generated.deepcopy.go").exists());
        assert!(!root.join("gone/zz_generated.deepcopy.go").exists(), "a package this tree lacks");
        assert!(root.join("_output/zz_generated.x").exists(), "the output is not the sources");
        // A step that fails fails the copy (no pipe hides it).
        let broken = script.replace("find . ", "find /nonexistent-kit-dir ");
        let out = kube_tree::proc::Proc::new("sh").args(["-c", &broken, "seed", "."]).output().unwrap();
        assert!(!out.success(), "a failed find passed");
    }

    #[test]
    fn only_the_generators_binaries_and_no_cache_are_copied() {
        let root = scratch_tree("dockerized-seed", &Spec::era_b());
        let tree = Tree::open(&root).unwrap();
        assert!(generators(&tree).unwrap().is_empty(), "no Makefile.generated_files, no generators");
        let rules = "DEEPCOPY_GEN := $(BIN_DIR)/deepcopy-gen\nBINDATA_GEN := $(BIN_DIR)/go-bindata\n\
                     $(DEEPCOPY_GEN): x\n\tKUBE_BUILD_PLATFORMS=\"\" hack/make-rules/build.sh y\n\
                     X := $(BIN_DIR)/$(shell evil)\n";
        tree.write_file("build/root/Makefile.generated_files", rules.as_bytes()).unwrap();
        let g = generators(&tree).unwrap();
        assert_eq!(g, ["deepcopy-gen", "go-bindata"]);
        let f = filters(&g);
        assert_eq!(f.first().unwrap(), "--filter=- /_output/dockerized/go/cache/");
        assert!(f.contains(&"--filter=+ /_output/dockerized/bin/*/*/deepcopy-gen".to_string()));
        assert!(f.contains(&"--filter=+ /_output/dockerized/go/bin/go-bindata".to_string()));
        assert_eq!(
            f[f.len() - 2..],
            ["--filter=- /_output/dockerized/bin/*/*/*", "--filter=- /_output/dockerized/go/bin/**"]
        );
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }
}
