//! make-clean's plan and its application: this tree's containers and images, and `_output`.

use crate::cache::volume_sizes;
use crate::containers::Containers;
use crate::engine::Engine;
use crate::job::Job;
use crate::labels::LABEL_TREE;
use crate::setup::Setup;
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::{values, Fail, Tree};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// What make-clean would remove.
#[derive(Debug, Default)]
pub struct CleanPlan {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub dangling: Vec<String>,
    pub output: Option<kube_tree::Confined>,
    /// The shared Go cache volume (make-clean --cache), when the engine holds the kit's.
    pub cache: Option<String>,
}

impl CleanPlan {
    /// Adds the shared Go cache volume to the plan, when the engine holds the kit's (a volume of
    /// that name without the kit's label is never taken).
    pub fn with_cache(&mut self, engine: &Engine) -> Result<()> {
        let volume = crate::cache::volume_name()?;
        if crate::cache::cache_exists(engine, &volume)? {
            self.cache = Some(volume);
        }
        Ok(())
    }
}

pub fn clean_plan(engine: Option<&Engine>, setup: &Setup, all_dangling: bool) -> Result<CleanPlan> {
    let mut plan = CleanPlan::default();
    if let Some(e) = engine {
        let job = Job { engine: e, setup };
        plan.containers = job.containers_of()?;
        plan.images = job.images_of_tree()?;
        if all_dangling {
            plan.dangling = e
                .query(&["images", "-q", "--filter", "dangling=true"])?
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
        }
    }
    let out = setup.tree.confined("_output")?;
    if out.exists() {
        plan.output = Some(out);
    }
    Ok(plan)
}

/// The scripts' names for a tree's objects (build/common.sh): `kube-build-<hash>-<version>`,
/// `kube-build-data-...`, `kube-rsync-...` containers and `kube-build:build-<hash>-<version>`
/// images, where the hash is the first 10 hex digits of an md5sum (lower case, as md5sum prints
/// them) and the version is the build image's (`6` in era C) or that and the kube-cross tag
/// (`5-v1.15.5-1`). Anything else is another program's, and never ours to remove.
fn scripts_name(name: &str) -> bool {
    scripts_hash(name).is_some()
}

/// The tree hash of one of the scripts' names (see [`scripts_name`]).
fn scripts_hash(name: &str) -> Option<&str> {
    let rest = ["kube-build-data-", "kube-rsync-", "kube-build-", "kube-build:build-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let (hash, version) = rest.split_once('-')?;
    let hash_ok = hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let (base, tag) = version.split_once('-').map_or((version, None), |(b, t)| (b, Some(t)));
    let base_ok = !base.is_empty() && base.bytes().all(|b| b.is_ascii_digit());
    let tag_ok = tag.is_none_or(|t| values::tag("tag", t).is_ok());
    (hash_ok && base_ok && tag_ok).then_some(hash)
}

/// The kit's objects of every tree on the engine: containers and images by label or by the
/// scripts' naming, never anything else. Also how many trees they belong to.
pub fn all_trees_plan(engine: &Engine) -> Result<(CleanPlan, usize)> {
    let containers = Containers::list(engine)?;
    let mut trees = std::collections::BTreeSet::new();
    let mut plan = CleanPlan::default();
    for c in &containers.0 {
        if !c.tree.is_empty() || scripts_name(&c.name) {
            trees.insert(if c.tree.is_empty() { tree_part(&c.name) } else { c.tree.clone() });
            plan.containers.push(c.name.clone());
        }
    }
    let tagged = engine.query(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?.unwrap_or_default();
    for t in tagged.lines().map(|t| engine.listed_name(t)).filter(|t| scripts_name(t)) {
        trees.insert(tree_part(t));
        plan.images.push(t.to_string());
    }
    // Labelled images the naming does not cover (an untagged old build of ours).
    let labelled = engine
        .query(&[
            "images",
            "-a",
            "--filter",
            &format!("label={LABEL_TREE}"),
            "--format",
            "{{.ID}}\t{{.Repository}}:{{.Tag}}",
        ])?
        .unwrap_or_default();
    for l in labelled.lines() {
        let (id, name) = l.split_once('\t').unwrap_or((l, ""));
        let name = engine.listed_name(name);
        if !plan.images.iter().any(|i| i == name) {
            plan.images.push(id.to_string());
        }
    }
    plan.containers.sort();
    plan.images.sort();
    plan.images.dedup();
    Ok((plan, trees.len()))
}

/// The tree hash in one of the scripts' names (the name itself for any other).
fn tree_part(name: &str) -> String {
    scripts_hash(name).unwrap_or(name).to_string()
}

/// The sizes the engine knows for a plan's objects, in bytes: a container's own layer plus its
/// volumes (the data container's sources, caches and outputs), an image's size, and `_output`.
pub fn sizes(engine: Option<&Engine>, plan: &CleanPlan) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    if let Some(e) = engine {
        let volumes = volume_sizes(e);
        let shared = crate::cache::volume_name().ok();
        if let Some(v) = &plan.cache {
            out.extend(volumes.get(v).map(|n| (v.clone(), *n)));
        }
        if !plan.containers.is_empty() {
            let mut args: Vec<String> = ["container", "inspect", "--size", "--format"].map(String::from).to_vec();
            args.push("{{.Name}}\t{{.SizeRw}}\t{{range .Mounts}}{{.Name}} {{end}}".into());
            args.extend(plan.containers.iter().cloned());
            for l in e.query(&args).ok().flatten().unwrap_or_default().lines() {
                let f: Vec<&str> = l.split('\t').collect();
                let own: u64 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                // The shared Go cache is every tree's, not this container's: counted once, as itself.
                let vols: u64 = f
                    .get(2)
                    .map(|m| {
                        m.split_whitespace()
                            .filter(|v| Some(*v) != shared.as_deref())
                            .filter_map(|v| volumes.get(v))
                            .sum()
                    })
                    .unwrap_or(0);
                out.insert(f[0].trim_start_matches('/').to_string(), own + vols);
            }
        }
        if !plan.images.is_empty() || !plan.dangling.is_empty() {
            for i in plan.images.iter().chain(&plan.dangling) {
                if let Some(size) = e.query(&["image", "inspect", "--format", "{{.Size}}", i]).ok().flatten() {
                    if let Ok(n) = size.trim().parse() {
                        out.insert(i.clone(), n);
                    }
                }
            }
        }
    }
    if let Some(o) = &plan.output {
        let mut total = 0u64;
        let _ = kube_tree::walk::entries(&o.path(), &[], |_, md| {
            if md.is_file() {
                total += md.len();
            }
        });
        out.insert(o.path().to_string(), total);
    }
    out
}

/// Makes everything under `dir` writable by its owner (Go's module cache is read-only), never
/// following a symlink.
pub(crate) fn make_writable(dir: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(dir)?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    if mode & 0o200 == 0 {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o200))?;
    }
    if md.is_dir() {
        for e in fs_err::read_dir(dir)? {
            let p =
                Utf8PathBuf::from_path_buf(e?.path()).map_err(|p| Fail::new(format!("not UTF-8: {}", p.display())))?;
            make_writable(&p)?;
        }
    }
    Ok(())
}

pub fn apply_clean(engine: Option<&Engine>, plan: &CleanPlan) -> Result<()> {
    if let Some(e) = engine {
        for c in &plan.containers {
            e.destroy(c);
        }
        for i in plan.images.iter().chain(plan.dangling.iter()) {
            let _ = e.run(&["rmi", i]);
        }
        if let Some(v) = &plan.cache {
            crate::cache::remove_cache(e, v)?;
        }
    }
    if let Some(out) = &plan.output {
        // A link in place of _output is removed as a link; its target is never touched.
        if !fs_err::symlink_metadata(out.path())?.file_type().is_symlink() {
            make_writable(&out.path())?;
        }
        out.remove_dir_all()?;
    }
    Ok(())
}

/// The glob patterns of what copy-output brings back (for reporting what landed).
pub(crate) const OUTPUT_GLOBS: &[&str] = &["_output/dockerized/bin/*/*/*"];

/// Binaries the containerized build left in the tree (`_output/dockerized/bin/<os>/<arch>/*`).
pub fn built_binaries(tree: &Tree) -> Vec<Utf8PathBuf> {
    let mut v = Vec::new();
    for pat in OUTPUT_GLOBS {
        if let Ok(paths) = glob::glob(tree.path(pat).as_str()) {
            v.extend(paths.flatten().filter_map(|p| Utf8PathBuf::from_path_buf(p).ok()).filter(|p| p.is_file()));
        }
    }
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_names_and_sizes() {
        for yes in [
            "kube-build-0123456789-5-v1.15.5-1",
            "kube-build-data-abcdefabcd-5-v1.20.0-1",
            "kube-rsync-0123456789-5-x",
            "kube-build:build-0123456789-5-v1.15.5-1",
            "kube-build-deadbeef00-6",
            "kube-build-8faa8d3cb7-5-v1.27.0-go1.20.6-bullseye.0",
        ] {
            assert!(scripts_name(yes), "{yes}");
        }
        for no in [
            "kube-build-notahash",
            "kube-build-0123456789",
            "kube-buildx-0123456789-5",
            "my-kube-build-0123456789-5",
            "kube-build:latest",
            "kube-build-DEADBEEF00-5-v1",
            "kube-rsync-DeadBeef00-5-v1",
            "kube-build-0123456789-x",
            "kube-build-0123456789-5-",
            "kube-build-0123456789--5",
            "kube-build-012345678g-6",
            "kube-build-01234567890-6",
            "kube-build-0123456789-5-v1 x",
        ] {
            assert!(!scripts_name(no), "{no}");
        }
        // The trees are told apart by hash, whatever the version.
        assert_eq!(tree_part("kube-build-data-abcdefabcd-5-v1.20.0-1"), "abcdefabcd");
        assert_eq!(tree_part("kube-build:build-0123456789-6"), "0123456789");
    }

    /// Era C (Go 1.25.7+, #136927): the module cache persists in `_output/dockerized/go` with
    /// read-only directories; removing it needs them writable again, and a link inside is never
    /// followed out of the tree. Modes are checked, not the removal (root could remove anyway).
    #[test]
    fn the_read_only_module_cache_is_made_writable_and_links_are_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let base = kube_tree::fixture::scratch_tree("clean-modcache", &kube_tree::fixture::Spec::era_c());
        let base = base.parent().unwrap().to_owned();
        let mode = |p: &Utf8Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        let cache = base.join("out/dockerized/go/cache/mod/golang.org/toolchain@v0.0.1-go1.25.7.linux-amd64");
        std::fs::create_dir_all(cache.join("bin")).unwrap();
        std::fs::write(cache.join("bin/go"), "").unwrap();
        let outside = base.join("elsewhere");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("link")).unwrap();
        for (p, m) in [
            (cache.join("bin/go"), 0o555),
            (cache.join("bin"), 0o555),
            (cache.clone(), 0o555),
            (outside.clone(), 0o555),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        make_writable(&base.join("out")).unwrap();
        assert_eq!(mode(&cache), 0o755);
        assert_eq!(mode(&cache.join("bin")), 0o755);
        assert_eq!(mode(&cache.join("bin/go")), 0o755);
        assert_eq!(mode(&outside), 0o555, "the link's target is not the tree's");
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
