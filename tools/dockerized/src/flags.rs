//! The flags of a containerized run, each declared once: run-dockerized and build-shell list
//! them in their help and pages, and [`crate::RunOptions`] reads exactly these.

use kube_tree::cli::Flag;

pub const MODE: Flag =
    Flag::value("--mode", "rsync|bind", "rsync (default: eras A/B, remote engines) or bind (era C, local engines)");
pub const ENGINE: Flag =
    Flag::value("--engine", "docker|podman", "the engine (default docker)").env("KUBE_CONTAINER_ENGINE");
pub const CROSS_IMAGE: Flag =
    Flag::value("--cross-image", "IMG", "the kube-cross image").env("KUBE_CROSS_IMAGE / KUBE_CROSS_VERSION");
pub const MIRROR: Flag =
    Flag::value("--mirror", "REGISTRY", "kube-cross from REGISTRY/build-image/kube-cross, else REGISTRY/kube-cross");
pub const MIRROR_SHORT: Flag =
    Flag::switch("--mirror-short", "with --mirror: only REGISTRY/kube-cross (a flat mirror)");
pub const CACHE: Flag =
    Flag::value("--cache", "shared|private", "one Go cache per engine (default) or the tree's").env("KUBE_BUILD_CACHE");
pub const NO_COPY: Flag =
    Flag::switch("--no-copy", "leave the output in the data container").env("KUBE_RUN_COPY_OUTPUT=n");
pub const FULL_SYNC: Flag =
    Flag::switch("--full-sync", "sync all in and out despite the last run's record").env("KUBE_RUN_FULL_SYNC=y");
pub const FORCE: Flag = Flag::switch("--force", "run the command even when nothing changed since its last success");
pub const DRY_RUN: Flag = Flag::switch("--dry-run", "print every engine command, in order; run none");
pub const ENGINES: Flag =
    Flag::value("--engines", "A,B,...", "fan the platforms out over these engines").env("KUBE_BUILD_ENGINES");
pub const SKIP_UNREACHABLE: Flag =
    Flag::switch("--skip-unreachable", "with --engines: go on without an engine that does not answer");
