//! One build fanned out over several container engines: the platforms of the command (its
//! KUBE_BUILD_PLATFORMS, or the tree's whole list for `make cross`) are split across the
//! engines by measured cost, and each engine runs the same command for its share in rsync mode,
//! concurrently, in a thread of this process (the library's run, with the share's engine,
//! platforms, rsync port and state files in its options: [`crate::ShareOf`]). Every share
//! copies its output back into the one `_output/dockerized/bin/<os>/<arch>` tree, so the
//! result is laid out as if one engine had built it all.

pub mod durations;
pub mod engines;
pub mod plan;
pub mod release;
mod run;

pub use engines::{EngineSpec, Reach};
pub use release::{Packaged, Packaging};
pub use run::{execute, Outcome, Share};

use crate::options::{RunOptions, ShareOf};
use crate::setup::Mode;
use kube_tree::{log, Fail, Tree};
use std::time::Duration;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// A fan-out's plan: the shares, and for a release target the packaging after them.
pub struct Plan {
    pub shares: Vec<Share>,
    pub packaging: Option<Packaging>,
}

/// A release carries its version in every tarball name and image tag; without one the tree's
/// packaging fails after the whole build ("git version information missing"). Said first.
fn release_version(tree: &Tree, target: &str) -> Result<()> {
    let v = kube_tree::version::get(tree, &|k| std::env::var(k).ok())?;
    if v.version.as_deref().is_none_or(str::is_empty) {
        return Err(Fail::new(format!(
            "make {target} needs the tree's version, and this tree has none (no git history, no archive \
             substitutions): set KUBE_GIT_VERSION (e.g. v1.20.2) or KUBE_GIT_VERSION_FILE"
        )));
    }
    Ok(())
}

/// A fan-out request: the engines, and the run's options each share starts from.
pub struct FanOut {
    pub engines: Vec<EngineSpec>,
    pub skip_unreachable: bool,
    /// The options as given (`--mirror`, `--cross-image`, `--cache`, `--force`, ...).
    pub opts: RunOptions,
}

/// What an engine answers when asked whether it is there, within this long.
const REACH_LIMIT: Duration = Duration::from_secs(20);

impl FanOut {
    /// The plan: each engine's platforms (engines with none left out) and the run it gets,
    /// then for a release target the host's packaging (its images on the first docker engine
    /// that answers). An engine that does not answer stops the run before any work, unless
    /// `skip_unreachable` (then the others share its platforms).
    pub fn plan(&self, tree: &Tree, cmd: &[String]) -> Result<Plan> {
        let req = plan::request(tree, cmd)?;
        if let Some(p) = &req.packaging {
            if !self.opts.copy {
                return Err(Fail::new(format!(
                    "make {} with --no-copy: the packaging needs every binary copied back",
                    p.target
                )));
            }
            release_version(tree, &p.target)?;
        }
        let durations = durations::load_durations(tree)?;
        let engines = self.reachable()?;
        let packaging = match req.packaging {
            Some(p) => {
                let Some(engine) = engines.iter().find(|e| e.program() == "docker") else {
                    return Err(Fail::new(format!(
                        "make {} in a fan-out: the tree's packaging builds its server images with docker; \
                         name a docker engine in the list",
                        p.target
                    )));
                };
                Some(Packaging { engine: Some(engine.clone()), ..p })
            }
            None => None,
        };
        let split = plan::split(&engines, &req.platforms, &durations);
        let idle: Vec<&str> =
            engines.iter().zip(&split).filter(|(_, p)| p.is_empty()).map(|(e, _)| e.spec.as_str()).collect();
        if !idle.is_empty() {
            log::status(format!(
                "{} platform(s) for {} engines: nothing for {} (KUBE_BUILD_PLATFORMS names more)",
                req.platforms.len(),
                engines.len(),
                idle.join(", ")
            ));
        }
        // Over every engine listed, reachable or not, so that an engine keeps its port.
        let ports = rsync_ports(tree, &self.engines);
        let port_of = |e: &EngineSpec| self.engines.iter().zip(&ports).find(|(x, _)| x.spec == e.spec).map(|x| *x.1);
        let shares: Vec<Share> = engines
            .into_iter()
            .zip(split)
            .filter(|(_, p)| !p.is_empty())
            .map(|(engine, platforms)| {
                let port = port_of(&engine).expect("a reachable engine is one of the list");
                let opts = self.share_opts(&engine, port, &platforms);
                Share { engine, platforms, opts, cmd: req.cmd.clone() }
            })
            .collect();
        Ok(Plan { shares, packaging })
    }

    /// The engines that answer, asked side by side; the rest named in one line.
    fn reachable(&self) -> Result<Vec<EngineSpec>> {
        let answers: Vec<Result<()>> = std::thread::scope(|s| {
            let asks: Vec<_> = self.engines.iter().map(|e| s.spawn(move || ask(e))).collect();
            asks.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Fail::new("the question panicked")))).collect()
        });
        let mut up = Vec::new();
        let mut down = Vec::new();
        for (e, a) in self.engines.iter().zip(answers) {
            match a {
                Ok(()) => up.push(e.clone()),
                Err(why) => down.push(format!("{} ({})", e.spec, why.msg)),
            }
        }
        if !down.is_empty() {
            let what = format!("unreachable engine(s): {}", down.join("; "));
            if !self.skip_unreachable {
                return Err(Fail::new(format!(
                    "{what}; nothing was started (--skip-unreachable builds on the others)"
                )));
            }
            log::warn(format!("{what}; their platforms go to the others (--skip-unreachable)"));
        }
        if up.is_empty() {
            return Err(Fail::new("no engine answers: nothing to build on"));
        }
        Ok(up)
    }

    /// One engine's share of the run: rsync mode, that engine, those platforms, its rsync port
    /// and state files, and never a fan-out of its own.
    fn share_opts(&self, engine: &EngineSpec, port: u16, platforms: &[String]) -> RunOptions {
        let share =
            ShareOf { engine: engine.clone(), platforms: platforms.to_vec(), rsync_port: port, tag: engine.tag() };
        RunOptions {
            mode: Some(Mode::Rsync),
            engine: None,
            engines: None,
            skip_unreachable: false,
            share: Some(share),
            ..self.opts.clone()
        }
    }
}

/// Where the shares' rsync daemons publish: below the ephemeral range.
const RSYNC_PORTS: std::ops::Range<u16> = 20000..32000;

/// The host port of each engine's rsync daemon for `tree`, in the order of `engines`: fixed per
/// tree and engine, below the ephemeral range, and never one port for two engines of the list.
/// Each daemon picks published ports on its own, from the start of that range, so two engines
/// on one host (a second daemon, podman beside docker) would both take 32768 and one share
/// would sync with the other's rsync daemon. A fixed port also lets the next run reuse the
/// daemon (the scripts' random port changes every time it is recreated). A port is derived
/// from the tree and the engine; when an earlier engine of the list holds it, the next free
/// one in the range is taken (so the ports stay the same from run to run).
pub fn rsync_ports(tree: &Tree, engines: &[EngineSpec]) -> Vec<u16> {
    let span = RSYNC_PORTS.end - RSYNC_PORTS.start;
    let mut taken: Vec<u16> = Vec::with_capacity(engines.len());
    for engine in engines {
        let h = kube_tree::fnv::hash(format!("{}\n{}", tree.root, engine.spec).as_bytes());
        let mut offset = (h % u64::from(span)) as u16;
        while taken.contains(&(RSYNC_PORTS.start + offset)) {
            offset = (offset + 1) % span;
        }
        taken.push(RSYNC_PORTS.start + offset);
    }
    taken
}

/// Whether `engine` answers, within [`REACH_LIMIT`] (the engine's own probe).
fn ask(engine: &EngineSpec) -> Result<()> {
    engine.engine(false)?.probe(REACH_LIMIT).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_of_a_tree_gets_its_own_fixed_rsync_port() {
        let root = kube_tree::fixture::scratch_tree("fanout-port", &kube_tree::fixture::Spec::era_b());
        let mut tree = Tree::open(&root).unwrap();
        let e = EngineSpec::parse_list("--engines", "default,kit-second,podman:").unwrap();
        let ports = rsync_ports(&tree, &e);
        assert!(ports.iter().all(|p| RSYNC_PORTS.contains(p)), "{ports:?}");
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2], "{ports:?}");
        assert_eq!(rsync_ports(&tree, &e), ports, "the same on every run");
        // Trees whose derived ports collide (about 0.7% of them for three engines) still get
        // three: every root name of a large range is tried, as if trees were everywhere.
        let mut collided = 0;
        for n in 0..20_000 {
            tree.root = format!("/src/k{n}/kubernetes").into();
            let p = rsync_ports(&tree, &e);
            assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2], "{} gets {p:?}", tree.root);
            assert!(p.iter().all(|p| RSYNC_PORTS.contains(p)), "{p:?}");
            let derived: Vec<u16> = e
                .iter()
                .map(|x| {
                    let h = kube_tree::fnv::hash(format!("{}\n{}", tree.root, x.spec).as_bytes());
                    RSYNC_PORTS.start + (h % 12000) as u16
                })
                .collect();
            collided += usize::from(derived != p);
        }
        assert!(collided > 0, "the range of roots must hold collisions for the test to prove anything");
        tree.root = root.clone();
        let fan = FanOut { engines: e.clone(), skip_unreachable: false, opts: no_flags() };
        let platforms = vec!["linux/arm64".to_string()];
        let opts = fan.share_opts(&e[1], ports[1], &platforms);
        let of = opts.share.as_ref().expect("a share's options");
        assert_eq!((of.rsync_port, &of.tag, &of.platforms), (ports[1], &e[1].tag(), &platforms));
        assert_eq!(of.engine, e[1]);
        assert!(opts.mode == Some(Mode::Rsync) && opts.engines.is_none() && opts.engine.is_none());
        let share = Share { engine: e[1].clone(), platforms, opts, cmd: vec!["make".into(), "cross".into()] };
        let shown = share.alone(&tree).display();
        assert!(shown.contains(&format!("KUBE_RSYNC_PORT={}", ports[1])), "{shown}");
        assert!(shown.contains("DOCKER_CONTEXT=kit-second") && shown.contains("-u KUBE_BUILD_ENGINES"), "{shown}");
        assert!(shown.ends_with("--mode rsync -- make cross"), "{shown}");
    }

    /// A run's options with no flag given.
    fn no_flags() -> RunOptions {
        RunOptions {
            mode: None,
            engine: None,
            cross_image: None,
            mirror: None,
            mirror_short: false,
            copy: true,
            dry_run: false,
            full_sync: false,
            force: false,
            engines: None,
            skip_unreachable: false,
            cache: None,
            share: None,
        }
    }

    #[test]
    fn a_release_without_a_version_is_refused_before_any_work() {
        // A fixture tree: no git, no archive substitutions; KUBE_GIT_VERSION not set here.
        if std::env::var_os("KUBE_GIT_VERSION").is_some() || std::env::var_os("KUBE_GIT_VERSION_FILE").is_some() {
            return;
        }
        let root = kube_tree::fixture::scratch_tree("fanout-version", &kube_tree::fixture::Spec::era_b());
        let tree = Tree::open(&root).unwrap();
        let e = release_version(&tree, "quick-release").unwrap_err();
        assert!(e.msg.contains("set KUBE_GIT_VERSION"), "{}", e.msg);
    }
}
