//! The flags of a containerized run, each declared once: run-dockerized and build-shell list
//! them in their help and pages, and [`crate::RunOptions`] reads exactly these.

use kube_tree::cli::Flag;

pub const MODE: Flag = Flag::value(
    "--mode",
    "rsync|bind",
    "rsync (default: eras A/B, remote engines): data container and rsync; bind (era C, local engines): \
     kube-cross with the tree mounted",
);
pub const ENGINE: Flag =
    Flag::value("--engine", "docker|podman", "the engine (default docker; DOCKER_HOST and contexts apply)")
        .env("KUBE_CONTAINER_ENGINE");
pub const CROSS_IMAGE: Flag =
    Flag::value("--cross-image", "IMG", "the kube-cross image").env("KUBE_CROSS_IMAGE / KUBE_CROSS_VERSION");
pub const MIRROR: Flag = Flag::value(
    "--mirror",
    "REGISTRY",
    "pull kube-cross from REGISTRY/build-image/kube-cross:TAG, else REGISTRY/kube-cross:TAG",
);
pub const MIRROR_SHORT: Flag =
    Flag::switch("--mirror-short", "with --mirror: pull only REGISTRY/kube-cross:TAG (a flat mirror)");
pub const CACHE: Flag =
    Flag::value("--cache", "shared|private", "one Go build cache volume per engine (default), or the tree's own")
        .env("KUBE_BUILD_CACHE");
pub const NO_COPY: Flag =
    Flag::switch("--no-copy", "leave the output in the data container").env("KUBE_RUN_COPY_OUTPUT=n");
pub const FULL_SYNC: Flag =
    Flag::switch("--full-sync", "sync everything in and out, whatever the last run's record says")
        .env("KUBE_RUN_FULL_SYNC=y");
pub const FORCE: Flag = Flag::switch("--force", "run the command even when nothing changed since its last success");
pub const DRY_RUN: Flag = Flag::switch("--dry-run", "print every engine command, in order; run none");
pub const ENGINES: Flag = Flag::value(
    "--engines",
    "A,B,...",
    "fan the platforms out over several engines (contexts, unix:// tcp:// ssh:// URLs, podman:[URL])",
)
.env("KUBE_BUILD_ENGINES");
pub const SKIP_UNREACHABLE: Flag =
    Flag::switch("--skip-unreachable", "with --engines: go on without an engine that does not answer");
