//! What the engine tests leave is removed, on every engine they used (docker, root podman, a
//! rootless user's podman): by the kit's tree label, the process's scratch paths and the
//! stand-in tags, at the end of each test ([`EngineGuard`]) and of the process ([`sweep_at_exit`]).

use crate::cli::{Cli, USED};
use crate::{cache_volume_prefix, cross_repo, log};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::Fail;
use std::time::Duration;

/// The rsync passwords the kit kept for this run's Go cache volumes (named after them).
fn remove_passwords(prefix: &str) {
    let dir = dockerized::password::shared_dir();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if e.file_name().to_str().is_some_and(|n| n.starts_with(prefix)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the rsync password the kit kept for the Go cache volume `volume` (a bench's own).
pub fn remove_cache_password(volume: &str) {
    let _ = std::fs::remove_file(dockerized::password::shared_dir().join(format!("{volume}.password")));
}

/// The containers and images (IDs) on the engine that carry the toolkit's tree label with a
/// value holding `marker` (a tree's path, or a run's `/<pid>-` / `kube-fixture-<pid>-`).
/// An engine that cannot answer fails the test.
pub fn engine_objects(marker: &str) -> (Vec<String>, Vec<String>) {
    objects_on(&Cli::docker(), marker).unwrap_or_else(|e| panic!("{}", e.msg))
}

/// [`engine_objects`] on any engine; Err when the engine could not be asked.
pub fn objects_on(cli: &Cli, marker: &str) -> Result<(Vec<String>, Vec<String>), Fail> {
    let docker = |args: &[&str]| cli.try_read(args);
    let ours = |out: String| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, tree)| tree.contains(marker))
            .map(|(id, _)| id.to_string())
            .collect()
    };
    // podman's ps template has no .Label; `index .Labels` is docker's map-less string there.
    let label = if cli.is_podman() {
        "{{.ID}} {{index .Labels \"io.k8s-build-kit.tree\"}}"
    } else {
        "{{.ID}} {{.Label \"io.k8s-build-kit.tree\"}}"
    };
    let containers = ours(docker(&["ps", "-a", "--filter", "label=io.k8s-build-kit.tree", "--format", label])?);
    // `docker images --format` knows no .Label: the labels come from one inspect of them all.
    let ids = docker(&["images", "-a", "-q", "--no-trunc", "--filter", "label=io.k8s-build-kit.tree"])?;
    let mut args = vec!["image", "inspect", "--format", "{{.Id}} {{index .Config.Labels \"io.k8s-build-kit.tree\"}}"];
    args.extend(ids.lines());
    let images = if args.len() > 4 { ours(docker(&args)?) } else { Vec::new() };
    Ok((containers, images))
}

/// Removes what the engine tests made for the tree at `root` (and for every tree whose path
/// holds `root`): containers (with their volumes) and kube-build images, by the toolkit's labels.
pub fn sweep_engine(root_marker: &str) {
    sweep_on(&Cli::docker(), root_marker)
}

/// [`sweep_engine`] on any engine.
pub fn sweep_on(cli: &Cli, root_marker: &str) {
    let (containers, images) = match objects_on(cli, root_marker) {
        Ok(found) => found,
        Err(e) => return eprintln!("testkit: clean-up could not list what is left: {}", e.msg),
    };
    cli.remove(&["rm", "-f", "-v"], &containers);
    if images.is_empty() {
        return;
    }
    // The legacy builder leaves untagged parent layers (a build's steps before its labels) that
    // several of these images may share: collected now, removed after them when nothing else
    // uses them (a plain rmi refuses a parent still in use). Tagged ancestors (kube-cross, the
    // base image) end the walk.
    let mut parents = Vec::new();
    for id in &images {
        let mut cur = id.clone();
        for _ in 0..64 {
            let Some(facts) =
                cli.read_for_cleanup(&["image", "inspect", "--format", "{{.Parent}} {{len .RepoTags}}", &cur])
            else {
                break;
            };
            let Some((parent, _)) = facts.trim().split_once(' ') else { break };
            if parent.is_empty() {
                break;
            }
            let tagged = cli
                .proc(&["image", "inspect", "--format", "{{len .RepoTags}}", parent])
                .timeout(Duration::from_secs(60))
                .read()
                .is_ok_and(|n| n.trim() != "0");
            if tagged {
                break;
            }
            parents.push(parent.to_string());
            cur = parent.to_string();
        }
    }
    cli.remove(&["rmi", "-f"], &images);
    parents.dedup();
    for p in parents {
        cli.remove(&["rmi"], &[p]);
    }
}

/// Cleans up after one engine test on drop, also when the test panics: the tree's containers
/// and images, named extra containers and tags, and child processes (socat).
pub struct EngineGuard {
    pub cli: Cli,
    pub root: Utf8PathBuf,
    pub containers: Vec<String>,
    pub tags: Vec<String>,
    pub children: Vec<std::process::Child>,
    /// Volumes the test made for itself (a cold cache of its own).
    pub volumes: Vec<String>,
}

impl EngineGuard {
    pub fn new(root: &Utf8Path) -> EngineGuard {
        EngineGuard::on(Cli::docker(), root)
    }

    /// A guard of what a test makes on `cli`'s engine.
    pub fn on(cli: Cli, root: &Utf8Path) -> EngineGuard {
        sweep_at_exit();
        cli.used();
        EngineGuard {
            cli,
            root: root.to_owned(),
            containers: Vec::new(),
            tags: Vec::new(),
            children: Vec::new(),
            volumes: Vec::new(),
        }
    }
}

impl Drop for EngineGuard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.cli.remove(&["rm", "-f", "-v"], &self.containers);
        if self.cli == Cli::docker() {
            keep_image_layers(&self.cli, &self.root);
        }
        sweep_on(&self.cli, self.root.as_str());
        self.cli.remove(&["rmi"], &self.tags);
        self.cli.remove(&["volume", "rm", "-f"], &self.volumes);
    }
}

/// Tags the layers of `root`'s kube-build image that every tree on the run's cache shares (its
/// parent: all but the tree's label line) under the run's stand-in repository, before the guard
/// removes the image. The legacy builder keeps a cached step only while an image uses it: each
/// test's build after another test ended replayed the image's last five steps (about a minute
/// of layer commits here). The stand-ins' clean-up removes the tag (the run's, or .ci/run's).
fn keep_image_layers(cli: &Cli, root: &Utf8Path) {
    let label = format!("label={}={root}", dockerized::LABEL_TREE);
    let Some(ids) = cli.read_for_cleanup(&["images", "-q", "kube-build", "--filter", &label]) else { return };
    let Some(id) = ids.lines().next().filter(|i| !i.is_empty()) else { return };
    let Some(parent) = cli.read_for_cleanup(&["image", "inspect", "-f", "{{.Parent}}", id]) else { return };
    let parent = parent.trim();
    if !parent.is_empty() {
        let _ = cli.try_read(&["tag", parent, &format!("{}:kept-build", cross_repo())]);
    }
}

/// At the end of the test process (passed or failed), removes what it made on the engine: the
/// containers and images of its scratch trees (their paths hold the process ID) and its
/// stand-in kube-cross tags. The base image (a Debian rootfs under a test-only name) stays as a
/// cache, like the fetched tree.
pub fn sweep_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn at_exit() {
        // A thread of its own: the main thread's thread-locals (Proc's shell) may already be
        // gone when exit(3) runs this.
        let _ = std::thread::spawn(sweep_now).join();
    }
    fn sweep_now() {
        let pid = std::process::id();
        let mut clis = vec![Cli::docker()];
        clis.extend(USED.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|c| **c != Cli::docker()).cloned());
        for cli in &clis {
            sweep_on(cli, &format!("/{pid}-"));
            sweep_on(cli, &format!("kube-fixture-{pid}-"));
            // A shared run's stand-ins (on every engine) serve the binaries after this one and
            // those running beside it; the run removes them at its end (.ci/run).
            if crate::shared_run_id().is_none() {
                remove_stand_ins(cli);
            }
            // This run's Go cache volumes (by their test-only name prefix); a volume exported by
            // .ci/run for every binary is its to remove.
            let prefix = cache_volume_prefix();
            let volumes: Vec<String> = cli
                .read_for_cleanup(&["volume", "ls", "-q"])
                .unwrap_or_default()
                .lines()
                .filter(|v| v.starts_with(&prefix))
                .map(str::to_string)
                .collect();
            cli.remove(&["volume", "rm", "-f"], &volumes);
        }
        remove_passwords(&cache_volume_prefix());
        if let Some(since) = SWEEP_SINCE.get() {
            sweep_orphan_layers(since, true);
        }
    }
    extern "C" {
        fn atexit(f: extern "C" fn()) -> i32;
    }
    // SAFETY: registers a plain function with the C library once; it runs at process exit,
    // after the test harness has finished (std::process::exit calls exit(3)).
    ONCE.call_once(|| unsafe {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let _ = SWEEP_SINCE.set(log::utc_iso(now.as_secs()));
        atexit(at_exit);
    });
}

/// This run's stand-in kube-cross tags on `cli`'s engine (podman lists them as localhost/REPO).
fn remove_stand_ins(cli: &Cli) {
    let repo = cross_repo();
    let Some(listed) = cli.read_for_cleanup(&["images", "--format", "{{.Repository}}:{{.Tag}}"]) else { return };
    let tags: Vec<String> = listed
        .lines()
        .filter(|t| t.trim_start_matches("localhost/").starts_with(&format!("{repo}:")))
        .map(str::to_string)
        .collect();
    cli.remove(&["rmi"], &tags);
}

/// When this process first used the engine (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
static SWEEP_SINCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Removes the untagged, unlabelled layers of kube-build images made since `since` that lost
/// their ancestry: when one test removes its image while another test's build is reusing the
/// same cached steps, the legacy builder commits that build's next step on a parent that is
/// gone, and the layer is reachable from nothing (no label, no `.Parent`). They are known by
/// their history: a step of the tree's build/build-image/Dockerfile (`touch /kube-build-image`).
///
/// Only this run's layers go: they inherit [`crate::RUN_LABEL`] from its stand-in kube-cross.
///
/// With `orphans_only` false (a benchmark's end, when the scripts' own builds ran and nothing of
/// ours still builds), dangling kube-build layers that kept their parent go too.
pub fn sweep_orphan_layers(since: &str, orphans_only: bool) {
    sweep_orphan_layers_of(since, orphans_only, &crate::run_id())
}

/// Whether the image `id` was built on the stand-in kube-cross of run `run` (its inherited
/// [`crate::RUN_LABEL`]): another run's layers, made at the same time on the same engine, stay.
fn made_by(id: &str, run: &str) -> bool {
    let format = format!("{{{{index .Config.Labels \"{}\"}}}}", crate::RUN_LABEL);
    Cli::docker().read_for_cleanup(&["image", "inspect", "--format", &format, id]).is_some_and(|l| l.trim() == run)
}

/// [`sweep_orphan_layers`] of the run `run` (a process ID): only layers built on its stand-in.
pub fn sweep_orphan_layers_of(since: &str, orphans_only: bool, run: &str) {
    let docker = |args: &[&str]| Cli::docker().read_for_cleanup(args).unwrap_or_default();
    for _ in 0..16 {
        let Some(dangling) =
            Cli::docker().read_for_cleanup(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
        else {
            return;
        };
        let ours: Vec<&str> = dangling
            .lines()
            .filter(|id| {
                // Orphans only: a layer with a parent may be a build's step in progress.
                let facts = docker(&["image", "inspect", "--format", "{{.Created}} {{.Parent}}", id]);
                let (created, parent) = facts.trim().split_once(' ').unwrap_or((facts.trim(), ""));
                (parent.is_empty() || !orphans_only)
                    && made_by(id, run)
                    && created.get(..19).is_some_and(|c| c >= &since[..19])
                    && docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", id])
                        .contains("touch /kube-build-image")
            })
            .collect();
        if ours.is_empty() {
            return;
        }
        let ours: Vec<String> = ours.into_iter().map(str::to_string).collect();
        Cli::docker().remove(&["rmi"], &ours);
    }
}
