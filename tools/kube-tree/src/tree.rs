//! A Kubernetes checkout and its era, with the evidence the era was read from.

use crate::confine::{Confined, Jail};
use crate::fail::{Fail, Result};
use crate::gomod::GoMod;
use crate::json::Json;
use crate::read::Cap;
use crate::root::{self, Found};
use camino::{Utf8Path, Utf8PathBuf};

/// The build model a tree belongs to (see docs: k8s-build-facts, the era table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// v1.15-1.16: GOPATH mode, vendor symlinks, Bazel, cross tag `v1.12.9-1`.
    A,
    /// about v1.20-1.34: build/dependencies.yaml / .go-version, rsync + data container build.
    B,
    /// late 2025 on: kube-cross run directly with the tree bind-mounted, no rsync.
    C,
}

impl Era {
    pub fn name(self) -> &'static str {
        match self {
            Era::A => "A",
            Era::B => "B",
            Era::C => "C",
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Era::A => "A (v1.15-1.16: GOPATH, vendor symlinks, Bazel)",
            Era::B => "B (rsync/data-container build, dependencies.yaml)",
            Era::C => "C (kube-cross run directly, tree bind-mounted)",
        }
    }
}

/// How `vendor/` relates to `staging/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorLayout {
    /// `vendor/k8s.io/<repo>` symlinks into `staging/src/k8s.io/<repo>`; builds in GOPATH mode.
    Symlinks,
    /// `go.work` uses the staging modules in place; no staging links in vendor/.
    Workspace,
    /// No `staging/src/k8s.io` at all.
    NoStaging,
}

impl VendorLayout {
    pub fn name(self) -> &'static str {
        match self {
            VendorLayout::Symlinks => "symlinks",
            VendorLayout::Workspace => "workspace",
            VendorLayout::NoStaging => "no-staging",
        }
    }
}

/// A checkout, opened once and shared by the checks.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: Utf8PathBuf,
    pub found: Option<Found>,
    pub era: Era,
    pub layout: VendorLayout,
    pub evidence: Vec<String>,
    pub gomod: Option<GoMod>,
    /// Content of `.go-version`, when the tree has one.
    pub go_version: Option<String>,
    /// Content of `build/build-image/cross/VERSION`.
    pub cross_tag: Option<String>,
}

impl Tree {
    /// Finds the tree (see [`root::discover_here`]) and opens it.
    pub fn discover(flag: Option<&Utf8Path>) -> Result<Tree> {
        let found = root::discover_here(flag)?;
        let mut t = Tree::open(&found.root)?;
        t.found = Some(found);
        Ok(t)
    }

    /// Reads the era of the tree at `root` (which is taken as given).
    pub fn open(root: &Utf8Path) -> Result<Tree> {
        let root = root.to_owned();
        let jail = Jail::new(&root)?;
        let mut ev = Vec::new();
        let has = |p: &str| root.join(p).exists();

        let gomod = match jail.path("go.mod")?.read_text(Cap::SCRIPT)? {
            Some(t) => Some(GoMod::read(&t).map_err(|e| Fail::new(format!("{root}/go.mod:{e}")))?),
            None => None,
        };
        let go_version = jail.path(".go-version")?.read_line()?;
        let cross_tag = jail.path("build/build-image/cross/VERSION")?.read_line()?;

        let common = jail.path("build/common.sh")?.read_text(Cap::SCRIPT)?;
        let rsync_build = has("build/build-image/rsyncd.sh")
            || common.as_deref().is_some_and(|c| c.contains("KUBE_RSYNC_CONTAINER_NAME") || c.contains("kube-rsync"));
        let era = if common.is_some() && !rsync_build {
            ev.push("build/common.sh has no rsync container and build/build-image/rsyncd.sh is absent: kube-cross runs directly".into());
            Era::C
        } else {
            if rsync_build {
                ev.push("build/ uses the rsync daemon + data container (build/build-image/rsyncd.sh)".into());
            } else {
                ev.push("no build/common.sh: build model unknown, judged by the files below".into());
            }
            if has("build/dependencies.yaml") || go_version.is_some() {
                if has("build/dependencies.yaml") {
                    ev.push("build/dependencies.yaml present".into());
                }
                if let Some(v) = &go_version {
                    ev.push(format!(".go-version says {v}"));
                }
                Era::B
            } else {
                ev.push("no build/dependencies.yaml and no .go-version".into());
                Era::A
            }
        };
        if let Some(tag) = &cross_tag {
            ev.push(format!("build/build-image/cross/VERSION is {tag}"));
        }
        if has("build/root/WORKSPACE") || has("WORKSPACE") {
            ev.push("Bazel WORKSPACE present".into());
        }
        if let Some(go) = gomod.as_ref().and_then(|m| m.go.as_ref()) {
            ev.push(format!("go.mod: go {go}"));
        }

        let layout = if has("go.work") {
            ev.push("go.work present: staging modules used in place, no vendor/k8s.io links expected".into());
            VendorLayout::Workspace
        } else if root.join("staging/src/k8s.io").is_dir() {
            ev.push("no go.work: vendor/k8s.io/<repo> must link into staging/ (GOPATH mode)".into());
            VendorLayout::Symlinks
        } else {
            ev.push("no staging/src/k8s.io".into());
            VendorLayout::NoStaging
        };

        Ok(Tree { root, found: None, era, layout, evidence: ev, gomod, go_version, cross_tag })
    }

    pub fn path(&self, rel: &str) -> Utf8PathBuf {
        self.root.join(rel)
    }

    /// The checked path for a change at `rel` (see [`crate::confine`]): refused if it would
    /// leave the tree, through `..` or a symlink.
    pub fn confined(&self, rel: impl AsRef<Utf8Path>) -> Result<Confined> {
        Jail::new(&self.root)?.path(rel)
    }

    /// The text of the regular file at `rel`, read through the checked path (see [`crate::read`]):
    /// `None` when missing; a link out of the tree, a FIFO, a device or a file over `cap` is an error.
    pub fn read_text(&self, rel: impl AsRef<Utf8Path>, cap: Cap) -> Result<Option<String>> {
        self.confined(rel)?.read_text(cap)
    }

    /// The first line of the one-line file at `rel`, trimmed (see [`Confined::read_line`]).
    pub fn read_line(&self, rel: impl AsRef<Utf8Path>) -> Result<Option<String>> {
        self.confined(rel)?.read_line()
    }

    /// One of the kit's own records or caches in the tree (under `_output`). One that cannot be
    /// read as a capped regular file of the tree (a FIFO, a link out, `/dev/zero`) is not obeyed:
    /// it is ignored with a warning, as if absent, and the next save replaces it.
    pub fn read_record(&self, rel: impl AsRef<Utf8Path>) -> Option<String> {
        match self.read_text(rel, Cap::LIST) {
            Ok(text) => text,
            Err(e) => {
                crate::log::warn(format!("ignoring a record of the kit: {}", e.msg));
                None
            }
        }
    }

    /// Writes the file at `rel` atomically, creating its directory, all beneath the tree.
    pub fn write_file(&self, rel: impl AsRef<Utf8Path>, contents: &[u8]) -> Result<()> {
        Jail::new(&self.root)?.write_file(rel, contents)
    }

    /// Removes the file or link at `rel` (missing is fine), beneath the tree.
    pub fn remove_file(&self, rel: impl AsRef<Utf8Path>) -> Result<()> {
        self.confined(rel)?.remove_file()
    }

    /// Names of the staging repos (`staging/src/k8s.io/*/` directories), sorted.
    pub fn staging_repos(&self) -> Result<Vec<String>> {
        let dir = self.path("staging/src/k8s.io");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for e in fs_err::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                if let Some(n) = e.file_name().to_str() {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Human explanation, one fact a line (stdout of `--explain-tree`).
    pub fn explain(&self) -> String {
        let mut s = format!("root\t{}\n", self.root);
        if let Some(f) = &self.found {
            s += &format!("found\t{} ({})\n", f.how, f.why);
        }
        s += &format!("era\t{}\nlayout\t{}\n", self.era.describe(), self.layout.name());
        for e in &self.evidence {
            s += &format!("evidence\t{e}\n");
        }
        s
    }

    pub fn to_json(&self) -> Json {
        Json::obj([
            ("root", Json::str(self.root.as_str())),
            ("found", Json::opt_str(self.found.as_ref().map(|f| f.how.clone()))),
            ("era", Json::str(self.era.name())),
            ("layout", Json::str(self.layout.name())),
            ("go_version", Json::opt_str(self.go_version.clone())),
            ("cross_tag", Json::opt_str(self.cross_tag.clone())),
            ("evidence", Json::strs(self.evidence.clone())),
        ])
    }
}
