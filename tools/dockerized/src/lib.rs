//! The containerized build of a Kubernetes tree, as build/run.sh and friends do it, for every era:
//!
//! * rsync mode (eras A and B, and any engine that is not local): a `kube-build` image built from
//!   the tree's build/build-image, a data container holding the sources and caches, an rsync
//!   daemon container on 127.0.0.1 to sync in and out, a throw-away build container;
//! * bind mode (era C, or `--mode bind` on a local engine): kube-cross run directly with the tree
//!   mounted at /go/src/k8s.io/kubernetes.
//!
//! Names follow build/common.sh (so trees built by the scripts are recognised); everything made
//! here also carries labels naming this kit and the tree.

pub mod fanout;
pub(crate) mod md5;
pub(crate) mod sync;

mod build;
pub mod cache;
mod clean;
mod containers;
mod engine;
pub mod flags;
pub mod image;
mod report;
mod result;
mod rsync;
mod setup;
pub mod toolchain;

use build::*;
use containers::*;
use engine::*;
use image::*;
use rsync::*;
use setup::*;

// What the tools use; everything else stays inside the crate.
pub use clean::{all_trees_plan, apply_clean, built_binaries, clean_plan, sizes, CleanPlan};
pub use engine::{Engine, Facts, Failed, Kind};
pub use report::{binaries_json, copy_json, RunSubject};
pub use setup::{registry_of, Mode, Names, Setup};

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::{Captured, Proc};
use kube_tree::{log, values, version, Cap, Era, Fail, Tree};
use std::cell::RefCell;
use std::process::ExitStatus;
use std::time::Duration;

pub const LABEL_OWNER: &str = "io.k8s-build-kit.owner";
pub const LABEL_TREE: &str = "io.k8s-build-kit.tree";
pub const LABEL_HASH: &str = "io.k8s-build-kit.hash";
/// On the rsync daemon: what it was started from, so a later run knows whether it may reuse it.
pub const LABEL_KEY: &str = "io.k8s-build-kit.key";
pub const OWNER: &str = "k8s-build-kit";
/// Where the tree lives inside every container.
pub const REMOTE_ROOT: &str = "/go/src/k8s.io/kubernetes";
/// Engine memory below which builds get killed (build/README.md, PR #62219).
pub const MIN_MEMORY: u64 = 4_500_000_000;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Set by a fan-out run for each engine's share: that engine's own state files.
pub const STATE_TAG_VAR: &str = "KUBE_KIT_STATE_TAG";

/// One of a run's state files under `_output/dockerized` (sync record, last run, change lists):
/// with a fan-out, each engine's share keeps its own (`NAME.<tag>`), so the engines' runs in
/// one tree never read each other's.
pub(crate) fn state_file(name: &str) -> String {
    state_file_of(name, state_tag().as_deref())
}

/// This run's tag when it is a share of a fan-out (checked at setup; an invalid one is none).
pub(crate) fn state_tag() -> Option<String> {
    std::env::var(STATE_TAG_VAR).ok().filter(|t| valid_state_tag(t))
}

/// [`state_file`] of the share tagged `tag` (the fan-out reads its shares' files).
pub(crate) fn state_file_of(name: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("_output/dockerized/{name}.{t}"),
        None => format!("_output/dockerized/{name}"),
    }
}

pub(crate) fn valid_state_tag(t: &str) -> bool {
    (1..=16).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// One containerized run's engine and setup: what nearly every step needs, passed as one value.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    pub engine: &'a Engine,
    pub setup: &'a Setup,
}

/// The choices shared by run-dockerized and build-shell.
pub struct RunOptions {
    pub mode: Option<String>,
    pub engine: Option<String>,
    pub cross_image: Option<String>,
    pub mirror: Option<String>,
    /// `--mirror-short`: pull MIRROR/kube-cross:TAG (a flat mirror), not MIRROR/<path>/kube-cross:TAG.
    pub mirror_short: bool,
    pub copy: bool,
    pub dry_run: bool,
    /// Sync everything in and copy everything out even when the last run's record says the data
    /// container matches the tree (for a container changed by hand).
    pub full_sync: bool,
    /// Run the command even when the last successful run of it proves nothing changed.
    pub force: bool,
    /// `--engines A,B`: fan the platforms out over these engines (see [`fanout`]).
    pub engines: Option<String>,
    pub skip_unreachable: bool,
    /// `--cache shared|private` (else `KUBE_BUILD_CACHE`, else shared; see [`cache`]).
    pub cache: Option<String>,
}

impl RunOptions {
    /// The flags [`RunOptions::from_ctx`] reads (it then rejects any other).
    pub const FLAGS: &'static [kube_tree::cli::Flag] = &[
        flags::MODE,
        flags::ENGINE,
        flags::CROSS_IMAGE,
        flags::MIRROR,
        flags::MIRROR_SHORT,
        flags::CACHE,
        flags::NO_COPY,
        flags::FULL_SYNC,
        flags::FORCE,
        flags::DRY_RUN,
    ];
    /// The flags [`RunOptions::from_ctx_fanout`] reads: those and the fan-out's.
    pub const FANOUT_FLAGS: &'static [kube_tree::cli::Flag] = &[
        flags::MODE,
        flags::ENGINE,
        flags::ENGINES,
        flags::SKIP_UNREACHABLE,
        flags::CROSS_IMAGE,
        flags::MIRROR,
        flags::MIRROR_SHORT,
        flags::CACHE,
        flags::NO_COPY,
        flags::FULL_SYNC,
        flags::FORCE,
        flags::DRY_RUN,
    ];

    /// One engine's options (build-shell).
    pub fn from_ctx(ctx: &mut kube_tree::cli::Ctx) -> Result<RunOptions> {
        RunOptions::read(ctx, false)
    }

    /// run-dockerized's: also `--engines` and `--skip-unreachable`.
    pub fn from_ctx_fanout(ctx: &mut kube_tree::cli::Ctx) -> Result<RunOptions> {
        RunOptions::read(ctx, true)
    }

    fn read(ctx: &mut kube_tree::cli::Ctx, fanout: bool) -> Result<RunOptions> {
        let mirror = ctx.opt_string("--mirror")?;
        if let Some(m) = &mirror {
            values::registry("--mirror", m)?;
        }
        let cross_image = ctx.opt_string("--cross-image")?;
        if let Some(i) = &cross_image {
            values::image_ref("--cross-image", i)?;
        }
        let cache = ctx.opt_string("--cache")?;
        if let Some(c) = &cache {
            cache::choose(Some(c))?;
        }
        let opts = RunOptions {
            mode: ctx.opt_string("--mode")?,
            engine: ctx.opt_string("--engine")?,
            cross_image,
            mirror_short: ctx.flag("--mirror-short"),
            mirror,
            copy: !ctx.flag("--no-copy"),
            dry_run: ctx.flag("--dry-run"),
            full_sync: ctx.flag("--full-sync")
                || std::env::var("KUBE_RUN_FULL_SYNC").is_ok_and(|v| v.starts_with(['y', 'Y'])),
            force: ctx.flag("--force"),
            engines: if fanout { ctx.opt_string("--engines")? } else { None },
            skip_unreachable: fanout && ctx.flag("--skip-unreachable"),
            cache,
        };
        // Every flag is read: anything else before the command is a usage error.
        ctx.finish()?;
        if opts.mirror_short && opts.mirror.is_none() {
            return Err(Fail::new("--mirror-short needs --mirror REGISTRY (it names the form pulled from it)"));
        }
        Ok(opts)
    }
}

/// The outcome of a containerized run.
pub struct RunResult {
    /// None in a dry run.
    pub status: Option<ExitStatus>,
    pub plan: Vec<String>,
    pub mode: Mode,
    /// The tree, engine and images of the run (for `--json`).
    pub subject: RunSubject,
}

/// What a run learned before deciding anything: the images, the containers, kube-cross's ID,
/// and the tree's stamps being taken meanwhile (rsync mode).
struct Opening {
    facts: ImageFacts,
    containers: Containers,
    cross_id: String,
    stamps: Option<std::thread::JoinHandle<Result<sync::HostStamps>>>,
}

impl Job<'_> {
    /// rsync mode: image, data container, rsync daemon, sync in (unless the sync record proves it
    /// would change nothing), the build container, copy out, and a new sync record when the run
    /// can prove the data container equals the tree again (see [`sync`]).
    fn rsync_cycle(
        &self,
        opts: &RunOptions,
        open: Opening,
        cmd: &[String],
        interactive: bool,
    ) -> Result<Option<ExitStatus>> {
        let (engine, setup) = (self.engine, self.setup);
        let (image_id, built) = self.build_image(&open.cross_id, &open.facts)?;
        self.remove_old_versions(&open.containers, built)?;
        let data_id = self.ensure_data_container(&open.containers)?;
        self.prepare_cache(&setup.names.image)?;
        let key = rsyncd_key(&image_id, &data_id, &setup.user);
        let mut cleanup = Cleanup::new(engine);
        let mut rsyncd = self.start_rsyncd(&key, Some(&open.containers), &mut cleanup)?;
        // A shell is the user's terminal, not wrapped: with no change list, the next run syncs in
        // full. A local engine gets the list in a host directory, a remote one in the data container.
        let wrapped = !interactive;
        let list_at = if opts.dry_run || engine.is_remote() {
            sync::ListAt::Volume
        } else {
            sync::ListAt::Host(setup.tree.path(&state_file(".kit-run")))
        };
        if !opts.dry_run {
            list_at.prepare(&setup.tree)?;
        }
        let (command, extra) =
            if wrapped { (sync::wrap(cmd, &list_at), list_at.engine_args()) } else { (cmd.to_vec(), Vec::new()) };
        // With the list in a host directory, the build container starts now and its command waits
        // for a go there: the container's start-up, most of a no-op run, overlaps the stamping and
        // the sync.
        let early = (wrapped && matches!(list_at, sync::ListAt::Host(_)))
            .then(|| self.start_build_container(&open.containers, &command, &extra, build_label(cmd), &mut cleanup));
        let stamps = match open.stamps.map(|h| h.join().expect("the stamps thread panicked")) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                log::status_v(2, format!("no sync record this time: {e}"));
                None
            }
            None => None,
        };
        let before = stamps.clone();
        // The last run's record holds while nothing it names has changed: the same data container,
        // the same daemon (the scripts replace it), the same tree stamps.
        let in_sync = !opts.full_sync
            && rsyncd.reused
            && sync::Record::load(&setup.tree).is_some_and(|r| {
                r.data == data_id && r.rsyncd == rsyncd.id && stamps.as_ref().is_some_and(|s| s.sum == r.host)
            });
        if !opts.dry_run {
            sync::Record::forget(&setup.tree)?;
        }
        if in_sync {
            log::status(
            "sources unchanged since the last sync (same tree stamps, data container and rsync daemon): not syncing",
        );
        } else if let Err(e) = self.sync_in(&rsyncd) {
            if !rsyncd.reused || kube_tree::proc::interrupted() {
                return Err(e);
            }
            log::warn(format!("the rsync daemon left running did not serve ({e}): starting a new one"));
            rsyncd = self.start_rsyncd(&key, None, &mut cleanup)?;
            self.sync_in(&rsyncd)?;
        }
        let status = match early {
            Some(running) => {
                list_at.go(&setup.tree)?;
                let status = running.join().expect("the build container thread panicked")?;
                if !kube_tree::proc::interrupted() {
                    // The command ended and `--rm` removed the container.
                    cleanup.keep(&setup.names.build);
                }
                Some(status)
            }
            None => self.run_in_container(&open.containers, &command, &extra, interactive)?,
        };
        let ok = status.is_none_or(|s| s.success());
        let keep = ok && keep_rsyncd() && !kube_tree::proc::interrupted();
        let mut copied = String::new();
        if opts.copy && ok {
            let full = if wrapped { CopyOut::Everything(&list_at) } else { CopyOut::Full };
            let host_list = match list_at {
                sync::ListAt::Host(_) => setup.tree.read_record(list_at.host_path(&setup.tree)),
                sync::ListAt::Volume => None,
            };
            let first = match (&host_list, &list_at) {
                (Some(l), _) if in_sync && l.trim().is_empty() => None,
                (Some(_), _) | (None, sync::ListAt::Volume) if in_sync => Some(CopyOut::Changed(&list_at)),
                _ => Some(full),
            };
            // A daemon left running that fails here (on a run that skipped the sync-in, this is its
            // first use) is replaced, and everything is copied out through the new one.
            let itemized = match first.map(|how| self.copy_out(&rsyncd, how)) {
                None => {
                    log::status_v(2, "the command changed nothing in the data container: nothing to copy out");
                    String::new()
                }
                Some(Ok(itemized)) => itemized,
                Some(Err(e)) if rsyncd.reused && !kube_tree::proc::interrupted() => {
                    log::warn(format!(
                        "the rsync daemon left running did not serve ({e}): copying everything out through a new one"
                    ));
                    rsyncd = self.start_rsyncd(&key, None, &mut cleanup)?;
                    self.copy_out(&rsyncd, full)?
                }
                Some(Err(e)) => return Err(e),
            };
            let changed = host_list.or_else(|| setup.tree.read_record(list_at.host_path(&setup.tree)));
            let _ = setup.tree.remove_file(list_at.host_path(&setup.tree));
            // The record needs the daemon it names to stay, and the stamps taken before the sync.
            if let (true, Some(mut stamps), Some(changed)) = (wrapped && keep && !opts.dry_run, stamps, changed) {
                let verdict = sync::settle(
                    &setup.tree.root,
                    &changed,
                    list_at.dirs(&setup.tree).as_deref(),
                    &itemized,
                    &mut stamps,
                )
                .and_then(|kept| self.same_content(&rsyncd, &kept));
                match verdict {
                    Ok(()) => sync::Record { data: data_id.clone(), rsyncd: rsyncd.id.clone(), host: stamps.sum }
                        .save(&setup.tree)?,
                    Err(why) => log::status(format!(
                    "the next run syncs in full: the data container differs from the tree after this command ({why})"
                )),
                }
            }
            copied = itemized;
        }
        // The record of this success, for the next run of the same request. It needs no proof that
        // the container equals the tree: the next identical run would meet the same container
        // and tree, and make the same binaries. It does need the tree as the run left it: the
        // stamps taken before the sync with what the copy-out changed; an edit made while the
        // command ran is not in the binaries, and the next run must build it.
        if ok && opts.copy && wrapped && !opts.dry_run && !kube_tree::proc::interrupted() {
            let key = result::Request::new(setup, cmd, &image_id, &open.cross_id, &data_id).key;
            self.record_success(key, before, &copied)?;
        }
        if keep {
            cleanup.keep(&setup.names.rsync);
        }
        Ok(status)
    }
}

/// The whole containerized run of `cmd`: image, data container, sync in, build, copy out (rsync
/// mode), or kube-cross with the tree mounted (bind mode). Containers it starts are removed on
/// every path out, including SIGINT/SIGTERM.
pub fn run(tree: Tree, opts: &RunOptions, cmd: &[String], interactive: bool) -> Result<RunResult> {
    kube_tree::proc::install_interrupt_handler();
    let engine = Engine::new(opts.engine.clone(), opts.dry_run)?;
    let mut setup = Setup::new(tree, &engine, opts.mode.as_deref(), opts.cross_image.clone())?;
    if opts.cache.is_some() {
        setup.cache = cache::choose(opts.cache.as_deref())?;
    }
    let job = Job { engine: &engine, setup: &setup };
    // Written before the tree is stamped: it is part of what gets synced.
    if !opts.dry_run {
        save_version_defs(&setup.tree)?;
    }
    // The opening questions, side by side: is the engine there, what images and containers
    // does it hold (everything up to the build container is decided from these answers), and
    // meanwhile, the stamps of the tree for the sync record.
    let stamps = (setup.mode == Mode::Rsync && !opts.dry_run).then(|| {
        let root = setup.tree.root.clone();
        std::thread::spawn(move || sync::HostStamps::take(&root))
    });
    let mut questions = vec![engine.info_cmd(), ImageFacts::cmd(&setup), Containers::cmd(engine.kind())];
    questions.extend(engine.context_cmd());
    let answers = engine.query_all(&questions)?;
    engine.take_info(answers[0].as_ref())?;
    engine.take_context(answers.get(3).and_then(Option::as_ref));
    log::status(format!(
        "{} mode, image {}, tree hash {}",
        setup.mode.name(),
        match setup.mode {
            Mode::Rsync => &setup.names.image,
            Mode::Bind => &setup.cross_image,
        },
        setup.names.hash
    ));
    let facts = ImageFacts::read(&engine, &setup, answers[1].as_ref())?;
    let containers = Containers::read(engine.kind(), answers[2].as_ref())?;
    let source = image::CrossSource {
        mirror: opts.mirror.clone(),
        short: opts.mirror_short,
        given: if opts.cross_image.is_some() {
            Some("--cross-image")
        } else {
            std::env::var("KUBE_CROSS_IMAGE").ok().filter(|s| !s.is_empty()).map(|_| "KUBE_CROSS_IMAGE")
        },
    };
    let cross_id = job.ensure_cross_image(&source, facts.cross_id.clone())?;
    // No change, no build: the last successful run of this request covers this one.
    let mut stamps = stamps;
    let last = (setup.mode == Mode::Rsync && !opts.dry_run && !interactive && opts.copy)
        .then(|| result::LastRun::load(&setup.tree))
        .flatten();
    if let (Some(last), Some(image_id), Some(data)) = (last, &facts.image_id, containers.get(&setup.names.data)) {
        let host = stamps.take().map(|h| h.join().expect("the stamps thread panicked"));
        let sum = host.as_ref().and_then(|h| h.as_ref().ok()).map(|h| h.sum);
        let req = result::Request::new(&setup, cmd, image_id, &cross_id, &data.id);
        match last.differs(&req, sum, &setup.tree) {
            None if !opts.force => {
                log::status(format!(
                    "nothing changed since the last successful `{}` (tree, images, data container, environment, outputs): not running it (--force runs it)",
                    cmd.join(" ")
                ));
                let subject = RunSubject::of(&engine, &setup);
                return Ok(RunResult { status: Some(result::success()), plan: Vec::new(), mode: setup.mode, subject });
            }
            None => log::status_v(2, "nothing changed since the last run, but --force: running it"),
            Some(why) => log::status_v(2, format!("running: {why} since the last successful run")),
        }
        stamps = host.map(|h| std::thread::spawn(move || h));
    }
    if !opts.dry_run {
        result::LastRun::forget(&setup.tree)?;
    }
    let status = match setup.mode {
        Mode::Rsync => job.rsync_cycle(opts, Opening { facts, containers, cross_id, stamps }, cmd, interactive)?,
        Mode::Bind => {
            if !opts.dry_run {
                setup.tree.confined("_output/dockerized")?.create_dir_all()?;
            }
            // Era C: the Go the tree names, served from the host when the container cannot fetch it.
            let go = toolchain::plan(&setup.tree, &|k| std::env::var(k).ok(), &toolchain::proxy_answers)?;
            toolchain::log_plan(&go);
            let extra = if opts.dry_run { Vec::new() } else { go.container_args(&setup.tree)? };
            job.prepare_cache(&setup.cross_image)?;
            job.run_in_container(&containers, cmd, &extra, interactive)?
        }
    };
    if kube_tree::proc::interrupted() {
        return Err(Fail::interrupted());
    }
    job.after_build(status.as_ref());
    let plan = engine.plan.borrow().clone();
    Ok(RunResult { status, plan, mode: setup.mode, subject: RunSubject::of(&engine, &setup) })
}

/// What [`copy_output`] did.
pub enum Copied {
    /// Bind mode: the build wrote into the tree; nothing to copy.
    BindMode,
    /// A dry run: the engine and rsync commands it would run.
    Planned(Vec<String>),
    /// The binaries now under `_output/dockerized/bin`.
    Binaries(Vec<Utf8PathBuf>),
}

/// `build/copy-output.sh`: the data container's output into the tree (the copy-out of a full
/// run, on its own: after `--no-copy`, or a build container killed before its copy-out).
pub fn copy_output(tree: Tree, engine_flag: Option<String>, dry_run: bool) -> Result<Copied> {
    let engine = Engine::new(engine_flag, dry_run)?;
    let setup = Setup::new(tree, &engine, None, None)?;
    let job = Job { engine: &engine, setup: &setup };
    if setup.mode == Mode::Bind {
        engine.check()?;
        return Ok(Copied::BindMode);
    }
    let answers = engine.query_all(&[
        engine.info_cmd(),
        Engine::image_id_cmd(&setup.names.image),
        Containers::cmd(engine.kind()),
    ])?;
    engine.take_info(answers[0].as_ref())?;
    let image_id = answers[1].as_ref().filter(|a| a.success()).map(|a| a.stdout.trim().to_string()).unwrap_or_default();
    let containers = Containers::read(engine.kind(), answers[2].as_ref())?;
    let data_id = match containers.get(&setup.names.data) {
        Some(d) => d.id.clone(),
        None if dry_run => String::new(),
        None => {
            return Err(Fail::new(format!(
                "no data container {} for this tree: nothing was built in a container here (run-dockerized first)",
                setup.names.data
            )))
        }
    };
    let mut cleanup = Cleanup::new(&engine);
    let key = rsyncd_key(&image_id, &data_id, &setup.user);
    let rsyncd = job.start_rsyncd(&key, Some(&containers), &mut cleanup)?;
    job.copy_out(&rsyncd, CopyOut::Full)?;
    if keep_rsyncd() && !kube_tree::proc::interrupted() {
        cleanup.keep(&setup.names.rsync);
    }
    drop(cleanup);
    if dry_run {
        return Ok(Copied::Planned(engine.plan.borrow().clone()));
    }
    Ok(Copied::Binaries(built_binaries(&setup.tree)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_build_common_sh() {
        // `printf 'host:/src/kubernetes:master' | md5sum` = 20178bb46259346c90c5606e86a56f0c
        let n = Names::new("host", Utf8Path::new("/src/kubernetes"), "master", "5-v1.15.5-1");
        assert_eq!(n.hash, "20178bb462");
        assert_eq!(n.image, format!("kube-build:build-{}-5-v1.15.5-1", n.hash));
        assert_eq!(n.data, format!("kube-build-data-{}-5-v1.15.5-1", n.hash));
        assert_eq!(n.prefixes()[1], format!("kube-rsync-{}", n.hash));
    }

    #[test]
    fn one_ps_listing_answers_reuse_and_garbage_collection() {
        let text = "c1\tkube-build-data-20178bb462-5-v1.15.5-1\t/src/kubernetes\t\texited\tExited (0) 3 minutes ago\t\n\
                    c2\tkube-rsync-20178bb462-5-v1.15.5-1\t/src/kubernetes\tabc\trunning\tUp 2 minutes\t127.0.0.1:49153->8730/tcp\n\
                    c3\tkube-build-data-20178bb462-5-v1.14.0-1\t\t\texited\tExited (137) 2 days ago\t\n\
                    c4\tother\t\t\tcreated\tCreated\t0.0.0.0:8080->80/tcp, :::8080->80/tcp\n";
        let l = Containers::parse(text);
        assert_eq!(l.0.len(), 4);
        assert_eq!(l.get("kube-build-data-20178bb462-5-v1.15.5-1").unwrap().exit_code(), Some(0));
        assert_eq!(l.get("kube-build-data-20178bb462-5-v1.14.0-1").unwrap().exit_code(), Some(137));
        let rsync = l.get("kube-rsync-20178bb462-5-v1.15.5-1").unwrap();
        assert_eq!((rsync.key.as_str(), rsync.state.as_str(), rsync.exit_code()), ("abc", "running", None));
        assert_eq!(rsync.host_port(8730), Some(49153));
        // Published elsewhere than 127.0.0.1, or another port: not ours to use.
        assert_eq!(l.get("other").unwrap().host_port(80), None);
        assert_eq!(rsync.host_port(873), None);
        assert_eq!(l.get("other").unwrap().exit_code(), None);

        let tree = kube_tree::fixture::scratch_tree("dockerized-ps", &kube_tree::fixture::Spec::era_b());
        let tree = Tree::open(&tree).unwrap();
        let names = Names::new("host", Utf8Path::new("/src/kubernetes"), "master", "5-v1.15.5-1");
        let setup = Setup {
            tree,
            mode: Mode::Rsync,
            names,
            cross_image: String::new(),
            hostname: "host".into(),
            user: "0:0".into(),
            cache: None,
        };
        // By name prefix (the scripts' containers carry no label), of any version.
        assert_eq!(setup.names.hash, "20178bb462");
        assert_eq!(
            l.of_tree(&setup),
            [
                "kube-build-data-20178bb462-5-v1.14.0-1",
                "kube-build-data-20178bb462-5-v1.15.5-1",
                "kube-rsync-20178bb462-5-v1.15.5-1"
            ]
        );
    }

    #[test]
    fn labels_are_read_out_of_the_inspect_json() {
        let json = r#"{"io.k8s-build-kit.context":"0123abcd","io.k8s-build-kit.owner":"k8s-build-kit"}"#;
        assert_eq!(label_of(json, "io.k8s-build-kit.context"), "0123abcd");
        assert_eq!(label_of("null", "io.k8s-build-kit.context"), "");
    }

    #[test]
    fn copy_out_excludes_the_container_gopath_once() {
        let root = kube_tree::fixture::scratch_tree("dockerized-filters", &kube_tree::fixture::Spec::era_b());
        let v120 = "function kube::build::copy_output() {\n  kube::build::rsync \\\n    --prune-empty-dirs \\\n    --filter='- /_temp/' \\\n    --filter='+ /_output/dockerized/bin/**' \\\n    --filter='+ types.go' \\\n    --filter='+ */' \\\n    --filter='- /**' \\\n    \"rsync://k8s@${KUBE_RSYNC_ADDR}/k8s/\" \"${KUBE_ROOT}\"\n}\n";
        std::fs::write(root.join("build/common.sh"), v120).unwrap();
        let tree = Tree::open(&root).unwrap();
        assert_eq!(
            copy_out_filters(&tree).unwrap(),
            ["- /_temp/", "+ /_output/dockerized/bin/**", "- /_output/dockerized/go/**", "+ types.go", "+ */", "- /**"]
        );
        // A tree that excludes it already is left as it is.
        std::fs::write(root.join("build/common.sh"), v120.replace("+ types.go", "- /_output/dockerized/go/**"))
            .unwrap();
        let f = copy_out_filters(&tree).unwrap();
        assert_eq!(f.iter().filter(|f| f.contains("dockerized/go")).count(), 1, "{f:?}");
        // No function at all: the Era B list.
        std::fs::write(root.join("build/common.sh"), "").unwrap();
        assert_eq!(copy_out_filters(&tree).unwrap(), COPY_OUT_FILTERS);
    }

    #[test]
    fn the_rsyncd_key_changes_with_what_the_daemon_serves() {
        let k = rsyncd_key("sha256:img", "data1", "1000:1000");
        assert_eq!(k.len(), 16);
        assert_eq!(k, rsyncd_key("sha256:img", "data1", "1000:1000"));
        assert_ne!(k, rsyncd_key("sha256:img", "data2", "1000:1000"), "a replaced data container");
        assert_ne!(k, rsyncd_key("sha256:img2", "data1", "1000:1000"), "a rebuilt image (new password)");
        assert_ne!(k, rsyncd_key("sha256:img", "data1", "0:0"), "another user");
    }
}
