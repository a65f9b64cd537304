//! The choices of a containerized run, as run-dockerized and build-shell read them from their
//! command line, and what makes a run one share of a fan-out.

use crate::cache::CacheChoice;
use crate::engine::EngineChoice;
use crate::fanout::engines::EngineSpec;
use crate::flags;
use crate::setup::Mode;
use crate::state::StateTag;
use kube_tree::{values, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The choices shared by run-dockerized and build-shell, from their flags and the environment
/// they honour, each read and checked here once: `KUBE_CONTAINER_ENGINE` (in [`Engine::new`],
/// which every engine goes through), `KUBE_BUILD_CACHE`, `KUBE_RUN_COPY_OUTPUT`,
/// `KUBE_RUN_FULL_SYNC` and `KUBE_BUILD_ENGINES` (and `KUBE_RSYNC_PORT` in [`Setup::new`]). The
/// variables of the engine itself (`DOCKER_HOST`, `DOCKER_OPTS`, ...) and of the tree's build
/// (`KUBE_CROSS_IMAGE`, `KUBE_BUILD_PLATFORMS`, ...) are read where they are used.
///
/// [`Engine::new`]: crate::engine::Engine::new
/// [`Setup::new`]: crate::setup::Setup::new
#[derive(Clone)]
pub struct RunOptions {
    pub mode: Option<Mode>,
    pub engine: Option<EngineChoice>,
    pub cross_image: Option<String>,
    pub mirror: Option<String>,
    /// `--mirror-short`: pull MIRROR/kube-cross:TAG (a flat mirror), not MIRROR/<path>/kube-cross:TAG.
    pub mirror_short: bool,
    /// Copy the output back (not `--no-copy`, not `KUBE_RUN_COPY_OUTPUT=n`).
    pub copy: bool,
    pub dry_run: bool,
    /// Sync everything in and copy everything out even when the last run's record says the data
    /// container matches the tree (for a container changed by hand).
    pub full_sync: bool,
    /// Run the command even when the last successful run of it proves nothing changed.
    pub force: bool,
    /// `--engines A,B` or `KUBE_BUILD_ENGINES`: fan the platforms out (see [`crate::fanout`]).
    pub engines: Option<EngineList>,
    pub skip_unreachable: bool,
    /// `--cache shared|private`, else `KUBE_BUILD_CACHE` (else shared; see [`crate::cache`]).
    pub cache: Option<CacheChoice>,
    /// Set by a fan-out for each engine's share (see [`ShareOf`]); None: a run of its own.
    pub share: Option<ShareOf>,
}

/// What makes a run one engine's share of a fan-out, each said here and nowhere else (not in
/// the environment: the shares run side by side in one process).
#[derive(Debug, Clone)]
pub struct ShareOf {
    /// The engine, reached by its CLI's own flags ([`EngineSpec::engine`]).
    pub engine: EngineSpec,
    /// The build container's `KUBE_BUILD_PLATFORMS`.
    pub platforms: Vec<String>,
    /// Its rsync daemon's port on 127.0.0.1 (each engine of a host its own).
    pub rsync_port: u16,
    /// Its own state files in the tree (see [`crate::state`]).
    pub tag: StateTag,
}

/// `--engine docker|podman|PATH`, checked (every tool with an `--engine` flag reads it so).
pub fn engine_flag(ctx: &mut kube_tree::cli::Ctx) -> Result<Option<EngineChoice>> {
    ctx.opt_string("--engine")?.map(|e| EngineChoice::parse("--engine", &e)).transpose()
}

/// A fan-out's engines as given, and where (`--engines` or `KUBE_BUILD_ENGINES`), for messages.
#[derive(Clone)]
pub struct EngineList {
    pub from: &'static str,
    pub list: String,
}

/// A run's flags in the order the help lists them, with `extra` after the engine's.
macro_rules! run_flags {
    ($($extra:expr),*) => {
        &[
            flags::MODE,
            flags::ENGINE,
            $($extra,)*
            flags::CROSS_IMAGE,
            flags::MIRROR,
            flags::MIRROR_SHORT,
            flags::CACHE,
            flags::NO_COPY,
            flags::FULL_SYNC,
            flags::FORCE,
            flags::DRY_RUN,
        ]
    };
}

impl RunOptions {
    /// The flags [`RunOptions::from_ctx`] reads (it then rejects any other).
    pub const FLAGS: &'static [kube_tree::cli::Flag] = run_flags!();
    /// The flags [`RunOptions::from_ctx_fanout`] reads: those and the fan-out's.
    pub const FANOUT_FLAGS: &'static [kube_tree::cli::Flag] = run_flags!(flags::ENGINES, flags::SKIP_UNREACHABLE);

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
        let cache = match ctx.opt_string("--cache")? {
            Some(c) => Some(CacheChoice::parse("--cache", &c)?),
            None => CacheChoice::from_env()?,
        };
        let engines = match fanout.then(|| ctx.opt_string("--engines")).transpose()?.flatten() {
            Some(list) => Some(EngineList { from: "--engines", list }),
            None if fanout => std::env::var("KUBE_BUILD_ENGINES")
                .ok()
                .filter(|e| !e.trim().is_empty())
                .map(|list| EngineList { from: "KUBE_BUILD_ENGINES", list }),
            None => None,
        };
        let yes = |var: &str| std::env::var(var).is_ok_and(|v| v.starts_with(['y', 'Y']));
        let no_copy_env = std::env::var("KUBE_RUN_COPY_OUTPUT").is_ok_and(|v| !v.starts_with(['y', 'Y']));
        let opts = RunOptions {
            mode: ctx.opt_string("--mode")?.map(|m| Mode::parse("--mode", &m)).transpose()?,
            engine: engine_flag(ctx)?,
            cross_image,
            mirror_short: ctx.flag("--mirror-short"),
            mirror,
            copy: !ctx.flag("--no-copy") && !no_copy_env,
            dry_run: ctx.flag("--dry-run"),
            full_sync: ctx.flag("--full-sync") || yes("KUBE_RUN_FULL_SYNC"),
            force: ctx.flag("--force"),
            engines,
            skip_unreachable: fanout && ctx.flag("--skip-unreachable"),
            cache,
            share: None,
        };
        // Every flag is read: anything else before the command is a usage error.
        ctx.finish()?;
        if opts.mirror_short && opts.mirror.is_none() {
            return Err(Fail::new("--mirror-short needs --mirror REGISTRY (it names the form pulled from it)"));
        }
        Ok(opts)
    }
}
