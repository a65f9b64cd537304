//! What the test binaries of one run share when .ci/run names the run (`KUBE_TEST_RUN_ID`): on
//! docker, the stand-in kube-cross and the first steps of the kube-build image built on it; on
//! disk, a copy of the real tree with its code generated. The legacy builder keeps a cached
//! step only while some image still uses it, and every engine test removes its tree's
//! kube-build image; without a run-wide stand-in and a tag on those steps, each test binary's
//! first build redid them (the tree's `chmod -R a+rwx /usr/local/go/pkg`: about two minutes
//! here, in every binary that builds). .ci/run removes what carries the run's label, and the
//! run's directory, at its end; a run without `KUBE_TEST_RUN_ID` shares these within its
//! process only.

use crate::engine::CROSS_TAG;
use crate::{cache_dir, cross_repo, scratch, FileLock};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::{log, Fail};

/// The run's name when .ci/run gives one to all its test binaries: lower-case letters, digits
/// and dashes only (it goes into image names); anything else is ignored.
pub fn shared_run_id() -> Option<String> {
    std::env::var("KUBE_TEST_RUN_ID").ok().filter(|r| {
        !r.is_empty() && r.len() <= 40 && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// The name this process's stand-in and the layers built on it carry: the shared run's, else the
/// process ID.
pub fn run_id() -> String {
    shared_run_id().unwrap_or_else(|| std::process::id().to_string())
}

/// The tag that keeps the steps of the real tree's build-image Dockerfile that every tree's
/// kube-build image shares (those before the tree's own rsync password is added), built on the
/// run's stand-in.
pub fn steps_tag() -> String {
    format!("{}:steps-{CROSS_TAG}", cross_repo())
}

/// Under a shared run: builds, once, those steps on the stand-in (written as run-dockerized
/// writes them: the FROM line names the stand-in; the later lines as they are) and tags them
/// [`steps_tag`]. The legacy builder then finds them cached for every tree of every binary. A
/// mismatch with what the tool writes costs only the cache hit, never a wrong image.
pub fn keep_image_steps(real: &Utf8Path) -> Result<(), Fail> {
    if shared_run_id().is_none() {
        return Ok(());
    }
    let tag = steps_tag();
    let have =
        || Proc::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &tag]).output().is_ok_and(|o| o.success());
    if have() {
        return Ok(());
    }
    let _lock = FileLock::take(cache_dir().join(".docker-images.lock"));
    if have() {
        return Ok(());
    }
    let dockerfile = fs_err::read_to_string(real.join("build/build-image/Dockerfile"))?;
    let steps = first_steps(&dockerfile, &format!("{}:{CROSS_TAG}", cross_repo())).ok_or_else(|| {
        Fail::new("the real tree's build-image Dockerfile has no FROM with the cross tag placeholder")
    })?;
    let ctx = scratch("kube-build-steps");
    fs_err::write(ctx.join("Dockerfile"), steps)?;
    // As run-dockerized writes it into every tree's context.
    fs_err::write(ctx.join("localtime"), std::fs::read("/etc/localtime").unwrap_or_default())?;
    crate::docker_build(&tag, &ctx, "the kube-build image's shared steps")
}

/// A copy at `dst` of the real tree with its code generation done: `make generated_files` in
/// bind mode by `tool` (run-dockerized) with the stand-in, once per shared run (else once per
/// process), every copy keeping the times that make judges by. A fresh v1.20 tree redoes the
/// whole generation in every build (two to three minutes here); a test whose proof is not that
/// generation starts from this copy instead, so that the suite pays it once. The tests that
/// prove a cold run (engine.rs's bind mode, every rsync-mode run, the rootless user's) do not.
pub fn generated_copy(tool: &Utf8Path, real: &Utf8Path, dst: &Utf8Path) -> Result<(), Fail> {
    static MINE: std::sync::Mutex<Option<Utf8PathBuf>> = std::sync::Mutex::new(None);
    let mut mine = MINE.lock().unwrap_or_else(|e| e.into_inner());
    let src = match (&*mine, shared_run_id()) {
        (Some(src), _) => src.clone(),
        (None, Some(run)) => {
            // Under the cache, beside the tree (hard links and renames stay on one file system),
            // outside `scratch` (whose sweep removes what no live process owns).
            let dir = cache_dir().join("shared-runs").join(&run);
            fs_err::create_dir_all(&dir)?;
            let _lock = FileLock::take(dir.join(".generated.lock"));
            let tree = dir.join("generated/kubernetes");
            if !dir.join("generated.complete").exists() {
                generate(tool, real, &tree)?;
                fs_err::write(dir.join("generated.complete"), "")?;
            }
            tree
        }
        (None, None) => {
            let tree = scratch("generated").join("kubernetes");
            generate(tool, real, &tree)?;
            tree
        }
    };
    *mine = Some(src.clone());
    drop(mine);
    crate::full_copy(&src, dst)
}

/// `real` copied to `tree`, and its code generated there.
fn generate(tool: &Utf8Path, real: &Utf8Path, tree: &Utf8Path) -> Result<(), Fail> {
    crate::full_copy(real, tree)?;
    let tree =
        Utf8PathBuf::from_path_buf(fs_err::canonicalize(tree)?).map_err(|_| Fail::new("a tree path is not UTF-8"))?;
    let _guard = crate::EngineGuard::new(&tree);
    let step = log::Step::start("generating the real tree's code once for the tests that build from it");
    let out = crate::engine::tool(tool, &[], &tree, &["--mode", "bind", "make", "generated_files"], &[]);
    if !out.success() {
        let said: Vec<&str> = out.stderr.trim().lines().rev().take(3).collect();
        let said: Vec<&str> = said.into_iter().rev().collect();
        return Err(Fail::new(format!("make generated_files in bind mode failed: {}", said.join(" | "))));
    }
    step.done();
    Ok(())
}

/// The Dockerfile's lines before its first `ADD` or `COPY` of anything but the host's
/// `localtime` (the same file in every tree's context), the placeholder FROM line naming
/// `stand_in`; None when there is no such FROM line.
fn first_steps(dockerfile: &str, stand_in: &str) -> Option<String> {
    let mut out = String::new();
    let mut from = false;
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        let word = words.next().unwrap_or("").to_ascii_uppercase();
        if (word == "ADD" || word == "COPY") && words.next() != Some("localtime") {
            break;
        }
        if word == "FROM" && line.contains("KUBE_BUILD_IMAGE_CROSS_TAG") {
            from = true;
            out.push_str(&format!("FROM {stand_in}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    from.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::first_steps;

    #[test]
    fn the_steps_end_before_the_first_add_and_name_the_stand_in() {
        let file = "# c\nFROM k8s.gcr.io/build-image/kube-cross:KUBE_BUILD_IMAGE_CROSS_TAG\n\nRUN a \\\n  && b\nADD localtime /etc/localtime\nADD f /\nRUN c\n";
        let want = "# c\nFROM s:t\n\nRUN a \\\n  && b\nADD localtime /etc/localtime\n";
        assert_eq!(first_steps(file, "s:t").unwrap(), want);
        assert_eq!(first_steps("FROM golang\nRUN a\n", "s:t"), None);
    }
}
