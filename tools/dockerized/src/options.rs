//! The choices of a containerized run, as run-dockerized and build-shell read them from their
//! command line (and a fan-out share's state tag from its environment).

use crate::cache;
use crate::flags;
use crate::state::StateTag;
use kube_tree::{values, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

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
    /// `--engines A,B`: fan the platforms out over these engines (see [`crate::fanout`]).
    pub engines: Option<String>,
    pub skip_unreachable: bool,
    /// `--cache shared|private` (else `KUBE_BUILD_CACHE`, else shared; see [`crate::cache`]).
    pub cache: Option<String>,
    /// A fan-out share's tag: the run keeps its own state files (see [`crate::state`]).
    pub state_tag: Option<StateTag>,
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
            state_tag: StateTag::from_env()?,
        };
        // Every flag is read: anything else before the command is a usage error.
        ctx.finish()?;
        if opts.mirror_short && opts.mirror.is_none() {
            return Err(Fail::new("--mirror-short needs --mirror REGISTRY (it names the form pulled from it)"));
        }
        Ok(opts)
    }
}
