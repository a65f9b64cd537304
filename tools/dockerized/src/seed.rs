//! A new branch's data container, seeded from the same tree's data container of another branch.
//!
//! The scripts name the data container after `HOSTNAME:KUBE_ROOT:branch`, so the first build on a
//! new branch starts from empty volumes: the shared Go cache makes its compiles warm, but a v1.20
//! tree's code generation (its generators built, then every package's files generated, minutes)
//! runs whole, because make sees generator binaries newer than every generated file. A sibling's
//! volume holds all of that for the same sources, with the times make compares: the tree is the
//! same checkout, so its files carry the same mtimes on the host, in the sibling and, after the
//! copy, here. The sync that follows moves only what the branch changed, with the host's times,
//! and make regenerates only for those.
//!
//! What is copied: the sibling's whole volume but the shared Go cache's mount point (a private
//! cache there is the sibling's) and the sibling's built binaries (in the output and in the
//! container GOPATH's `bin`) other than the code generators the tree's
//! `Makefile.generated_files` names: a copy-out must only ever bring back what this branch's
//! builds made.

use crate::cache::{valid_volume_name, CACHE_SUBPATH};
use crate::containers::{Containers, Listed};
use crate::job::Job;
use crate::layout::REMOTE_ROOT;
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
    /// Copied from this sibling data container.
    From(String),
    /// Nothing to seed from (or the run keeps a private cache): it starts empty.
    NoSibling,
    /// The copy failed: the caller makes the data container again, empty.
    Failed,
}

/// The data container to seed this tree's new one from: the same tree (label) and the same
/// image version on another branch, exited 0, no build of its own running; the newest one
/// (`ps -a` lists newest first).
pub(crate) fn pick<'c>(containers: &'c Containers, tree: &str, names_hash: &str, version: &str) -> Option<&'c Listed> {
    let running: Vec<&str> = containers.0.iter().filter(|c| c.state == "running").map(|c| c.name.as_str()).collect();
    containers.0.iter().find(|c| {
        let Some(hash) = c.name.strip_prefix("kube-build-data-").and_then(|r| r.strip_suffix(&format!("-{version}")))
        else {
            return false;
        };
        let builds = format!("kube-build-{hash}-{version}");
        hash.len() == 10
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && hash != names_hash
            && !tree.is_empty()
            && c.tree == tree
            && c.exit_code() == Some(0)
            && !running.contains(&builds.as_str())
    })
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

impl Job<'_> {
    /// Seeds the data container just created from a sibling branch's, when there is one and the
    /// run shares its Go cache (`--cache private` keeps the old cold start). After a failed copy
    /// the caller makes the data container again, empty: the build is cold, not wrong.
    pub(crate) fn seed_data_container(&self, containers: &Containers) -> Result<Seeded> {
        let (engine, setup) = (self.engine, self.setup);
        if setup.cache.is_none() {
            return Ok(Seeded::NoSibling);
        }
        let Some(seed) = pick(containers, setup.tree.root.as_str(), &setup.names.hash, &setup.names.version) else {
            return Ok(Seeded::NoSibling);
        };
        let asked = engine.query(&[
            "inspect",
            "--format",
            &format!(
                "{{{{range .Mounts}}}}{{{{if eq .Destination \"{REMOTE_ROOT}\"}}}}{{{{.Name}}}}{{{{end}}}}{{{{end}}}}"
            ),
            &seed.name,
        ])?;
        // A dry run asks nothing; otherwise no answer means the sibling is gone since the listing.
        let volume = match asked {
            Some(v) => v,
            None if engine.dry_run => "SEED-VOLUME".into(),
            None => return Ok(Seeded::NoSibling),
        };
        if !valid_volume_name(&volume) {
            log::warn(format!("not seeding from {}: its volume is named `{}`", seed.name, volume.escape_debug()));
            return Ok(Seeded::NoSibling);
        }
        let helper = format!("kube-build-{}-seed-{}", setup.names.hash, setup.names.version);
        engine.destroy(&helper);
        let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--name".into(), helper.clone()];
        args.extend(setup.labels());
        args.extend(["--volumes-from".into(), setup.names.data.clone()]);
        args.extend(["--volume".into(), format!("{volume}:{SEED_MOUNT}:ro")]);
        args.extend([setup.names.image.clone(), "rsync".into(), "-a".into()]);
        args.extend(filters(&generators(&setup.tree)?));
        args.extend([format!("{SEED_MOUNT}/"), format!("{REMOTE_ROOT}/")]);
        let label = format!("seeding the new data container from {} (this tree on another branch)", seed.name);
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
    use super::{filters, generators, pick};
    use crate::containers::Containers;
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::Tree;

    const V: &str = "5-v1.15.5-1";

    fn listing(rows: &[(&str, &str, &str, &str)]) -> Containers {
        let text: String = rows
            .iter()
            .map(|(name, tree, state, status)| format!("id-{name}\t{name}\t{tree}\t\t{state}\t{status}\t\n"))
            .collect();
        Containers::parse(&text)
    }

    #[test]
    fn the_seed_is_this_trees_other_branch_of_the_same_version_idle_and_whole() {
        let ours = "aaaaaaaaaa";
        let exited = "Exited (0) 2 minutes ago";
        let sibling = format!("kube-build-data-bbbbbbbbbb-{V}");
        let ok = listing(&[(&sibling, "/src/k", "exited", exited)]);
        assert_eq!(pick(&ok, "/src/k", ours, V).map(|c| c.name.as_str()), Some(sibling.as_str()));
        // Another tree, another version, our own name, a failed one, a scripts' one (no label).
        for rows in [
            [(sibling.as_str(), "/src/other", "exited", exited)],
            [("kube-build-data-bbbbbbbbbb-5-v1.16.0-1", "/src/k", "exited", exited)],
            [(&format!("kube-build-data-{ours}-{V}") as &str, "/src/k", "exited", exited)],
            [(sibling.as_str(), "/src/k", "exited", "Exited (137) 2 minutes ago")],
            [(sibling.as_str(), "", "exited", exited)],
            [(&format!("kube-build-data-bbbbbbbbbb-x-{V}") as &str, "/src/k", "exited", exited)],
        ] {
            assert!(pick(&listing(&rows), "/src/k", ours, V).is_none(), "{rows:?}");
        }
        // A build of the sibling's running: its volume is being written.
        let busy = listing(&[
            (&format!("kube-build-bbbbbbbbbb-{V}"), "/src/k", "running", "Up 3 seconds"),
            (&sibling, "/src/k", "exited", exited),
        ]);
        assert!(pick(&busy, "/src/k", ours, V).is_none());
        // Of two, the newest (listed first).
        let newer = format!("kube-build-data-cccccccccc-{V}");
        let two = listing(&[(&newer, "/src/k", "exited", exited), (&sibling, "/src/k", "exited", exited)]);
        assert_eq!(pick(&two, "/src/k", ours, V).map(|c| c.name.as_str()), Some(newer.as_str()));
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
