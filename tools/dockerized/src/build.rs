//! The build container: its arguments (the scripts' environment, the caller's user) and runs.

use crate::containers::Containers;
use crate::engine::{proxy_env, Cleanup, Engine, Kind};
use crate::job::Job;
use crate::layout::REMOTE_ROOT;
use crate::setup::{Mode, VERSION_DEFS};
use camino::Utf8Path;
use kube_tree::Fail;
use std::process::ExitStatus;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The environment the scripts pass into the build container: values come from ours (`--env
/// NAME` without a value, so nothing lands on the command line), GOLDFLAGS only when set;
/// `KUBE_BUILD_PLATFORMS` is `platforms` when given (a fan-out share's).
pub(crate) fn build_env_args(platforms: Option<&str>) -> Vec<String> {
    let mut args = Vec::new();
    let mut pass = |name: &str, default: Option<&str>| match (std::env::var(name).is_ok(), default) {
        (true, _) => args.extend(["--env".to_string(), name.to_string()]),
        (false, Some(d)) => args.extend(["--env".to_string(), format!("{name}={d}")]),
        (false, None) => {}
    };
    pass("KUBE_FASTBUILD", Some("false"));
    pass("KUBE_BUILDER_OS", Some(std::env::consts::OS));
    pass("KUBE_VERBOSE", Some("1"));
    for n in [
        "KUBE_BUILD_WITH_COVERAGE",
        "KUBE_CGO_OVERRIDES",
        "KUBE_STATIC_OVERRIDES",
        "FORCE_HOST_GO",
        "GO_VERSION",
        "GOTOOLCHAIN",
        "KUBE_RACE",
        "GOFLAGS",
        "GOGCFLAGS",
        "GOLDFLAGS",
        "SOURCE_DATE_EPOCH",
        "GOPROXY",
    ] {
        pass(n, None);
    }
    match platforms {
        Some(p) => args.extend(["--env".to_string(), format!("KUBE_BUILD_PLATFORMS={p}")]),
        None => pass("KUBE_BUILD_PLATFORMS", None),
    }
    for (env, v) in proxy_env() {
        args.extend(["--env".to_string(), format!("{env}={v}")]);
    }
    if let Ok(cg) = std::env::var("DOCKER_CGROUP_PARENT") {
        args.extend(["--cgroup-parent".to_string(), cg]);
    }
    args
}

/// `--interactive --tty` when stdin is a terminal, else attach stdout/stderr (as the scripts).
pub(crate) fn attach_args() -> Vec<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        vec!["--interactive".into(), "--tty".into()]
    } else {
        vec!["--attach=stdout".into(), "--attach=stderr".into()]
    }
}

impl Job<'_> {
    /// Runs `cmd` in a fresh build container (rsync mode: from the data container's volumes; bind
    /// mode: kube-cross with the tree mounted). The container is removed afterwards, whatever happens:
    /// by the engine (`--rm`) when the command ends, by us when we are interrupted. `containers`
    /// says whether a container of that name is left over from a crash.
    pub(crate) fn run_in_container(
        &self,
        containers: &Containers,
        cmd: &[String],
        extra: &[String],
        interactive: bool,
    ) -> Result<Option<ExitStatus>> {
        let (engine, setup) = (self.engine, self.setup);
        let name = setup.names.build.clone();
        self.remove_leftover_build(containers);
        let mut cleanup = Cleanup::new(engine);
        cleanup.names.push(name.clone());
        let args = self.build_container_args(cmd, extra, interactive);
        let status = if interactive { engine.interactive(&args)? } else { engine.stream(&args, &build_label(cmd))? };
        if !kube_tree::proc::interrupted() {
            // The command ended and `--rm` removed the container.
            cleanup.keep(&name);
        }
        Ok(status)
    }

    /// Starts the build container without waiting for it (rsync mode, local engine): its wrapped
    /// command waits for the go of [`sync::ListAt::go`], so the container's start-up overlaps the
    /// stamping and syncing of the tree. It is on `cleanup` until the caller has its status.
    pub(crate) fn start_build_container(
        &self,
        containers: &Containers,
        cmd: &[String],
        extra: &[String],
        label: String,
        cleanup: &mut Cleanup,
    ) -> std::thread::JoinHandle<Result<ExitStatus>> {
        let (engine, setup) = (self.engine, self.setup);
        self.remove_leftover_build(containers);
        cleanup.names.push(setup.names.build.clone());
        let run = engine.cmd(&self.build_container_args(cmd, extra, false));
        // Under the share's scope, if any: its lines and its stop flag.
        kube_tree::scope::spawn(move || run.run_streaming(&label))
    }

    /// A build container of this tree left over from a crash would block the name (a dry run
    /// plans the removal, as it cannot know).
    pub(crate) fn remove_leftover_build(&self, containers: &Containers) {
        let (engine, setup) = (self.engine, self.setup);
        if engine.dry_run || containers.get(&setup.names.build).is_some() {
            engine.destroy(&setup.names.build);
        }
    }
}

/// Who the build runs as, so that what it writes is the caller's. In bind mode on a rootless
/// engine root inside already is the caller outside: podman's `keep-id` also runs the build as
/// the caller's own uid (tools that check who owns the tree, as git does, see themselves);
/// rootless docker has no such mapping, so the build runs as root. With SELinux enforcing, the
/// mounted tree is read with labelling off for this container rather than relabelled: `:z`
/// would rewrite the label of every file of the user's checkout.
pub(crate) fn user_args(engine: &Engine, mode: Mode, user: &str) -> Vec<String> {
    let mut args = Vec::new();
    match (mode, engine.is_rootless(), engine.kind()) {
        (Mode::Bind, true, Kind::Podman) => args.push("--userns=keep-id".to_string()),
        (Mode::Bind, true, Kind::Docker) => {}
        _ => args.push(format!("--user={user}")),
    }
    if mode == Mode::Bind && engine.facts().selinux {
        args.extend(["--security-opt".to_string(), "label=disable".to_string()]);
    }
    args
}

/// How the build container's output is labelled in the progress lines: the user's command.
pub(crate) fn build_label(cmd: &[String]) -> String {
    format!("build container ({})", cmd.join(" "))
}

impl Job<'_> {
    /// The `run` arguments of the build container (rsync mode: the kube-build image with the data
    /// container's volumes; bind mode: kube-cross with the tree mounted).
    pub(crate) fn build_container_args(&self, cmd: &[String], extra: &[String], interactive: bool) -> Vec<String> {
        let (engine, setup) = (self.engine, self.setup);
        let name = &setup.names.build;
        let mut args: Vec<String> =
            vec!["run".into(), format!("--name={name}"), format!("--hostname={}", setup.hostname), "--rm".into()];
        args.extend(setup.labels());
        args.extend(user_args(engine, setup.mode, &setup.user));
        let image = match setup.mode {
            Mode::Rsync => {
                args.extend(["--volumes-from".into(), setup.names.data.clone()]);
                setup.names.image.clone()
            }
            Mode::Bind => {
                args.extend(setup.tree_mount());
                args.extend(["--workdir".into(), REMOTE_ROOT.into()]);
                args.extend([
                    "--env".into(),
                    "KUBE_OUTPUT_SUBPATH=_output/dockerized".into(),
                    "--env".into(),
                    format!("HOME={REMOTE_ROOT}"),
                ]);
                args.extend([
                    "--env".into(),
                    "GIT_AUTHOR_EMAIL=nobody@k8s.io".into(),
                    "--env".into(),
                    "GIT_AUTHOR_NAME=kube-build-image".into(),
                ]);
                args.extend(["--env".into(), format!("KUBE_GIT_VERSION_FILE={REMOTE_ROOT}/{VERSION_DEFS}")]);
                if Utf8Path::new("/etc/localtime").exists() {
                    args.extend([
                        "--mount".into(),
                        "type=bind,source=/etc/localtime,target=/etc/localtime,readonly".into(),
                    ]);
                }
                setup.cross_image.clone()
            }
        };
        // The shared Go cache (issue 21): the one mount it needs, over the scripts' cache path.
        if let Some(volume) = &setup.cache {
            args.extend(crate::cache::mount_args(volume));
        }
        args.extend(build_env_args(setup.platforms.as_deref()));
        args.extend(extra.iter().cloned());
        if interactive {
            args.extend(attach_args());
        } else {
            args.extend(["--attach=stdout".into(), "--attach=stderr".into()]);
        }
        args.push(image);
        args.extend(cmd.iter().cloned());
        args
    }
}
