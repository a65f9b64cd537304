//! make-clean's plan and its application: this tree's containers and images, and `_output`.

use super::*;

/// What make-clean would remove.
#[derive(Debug, Default)]
pub struct CleanPlan {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub dangling: Vec<String>,
    pub output: Option<kube_tree::Confined>,
}

pub fn clean_plan(engine: Option<&Engine>, setup: &Setup, all_dangling: bool) -> Result<CleanPlan> {
    let mut plan = CleanPlan::default();
    if let Some(e) = engine {
        let job = Job { engine: e, setup };
        plan.containers = job.containers_of()?;
        plan.images = job.images_of()?;
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
