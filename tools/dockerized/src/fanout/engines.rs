//! The engines of a fan-out, as the user names them: docker contexts, DOCKER_HOST-style URLs,
//! `podman:`; what a run on each gets (its environment, its state tag), and its CLI.

use crate::engine::{Engine, EngineChoice, Kind, Target};
use crate::state::StateTag;
use kube_tree::{values, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// One engine of a fan-out run, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    /// The entry as given (the key of its measured durations).
    pub spec: String,
    pub reach: Reach,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A docker context (`default` is the engine of DOCKER_HOST / the current context).
    Context(String),
    /// `unix://`, `tcp://`, `ssh://` for docker (DOCKER_HOST).
    DockerHost(String),
    /// podman, local (None) or at a URL (CONTAINER_HOST).
    Podman(Option<String>),
}

impl EngineSpec {
    /// `NAME`, `unix://...`, `tcp://HOST:PORT`, `ssh://USER@HOST`, `podman:` or `podman:URL`.
    pub fn parse(s: &str) -> Result<EngineSpec> {
        let bad = |why: &str| Fail::new(format!("engine `{}`: {why}", s.escape_debug()));
        if s.is_empty() || s.len() > 512 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("empty, too long, or holding spaces or control characters"));
        }
        let url = |u: &str| -> Result<String> {
            let ok = ["unix:///", "tcp://", "ssh://"].iter().any(|p| u.starts_with(p) && u.len() > p.len());
            if !ok || u.contains(['\'', '"', '`', '$', ';', '\\']) {
                return Err(bad("a URL is unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST"));
            }
            // The host and user of an ssh URL reach ssh's command line (through docker).
            values::endpoint("engine", u)?;
            Ok(u.to_string())
        };
        let reach = if let Some(rest) = s.strip_prefix("podman:") {
            Reach::Podman(if rest.is_empty() { None } else { Some(url(rest)?) })
        } else if s == "podman" {
            Reach::Podman(None)
        } else if s.contains("://") {
            Reach::DockerHost(url(s)?)
        } else {
            // docker's own rule for context names.
            let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            if !first_ok || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c)) {
                return Err(bad("not a docker context name, a unix://, tcp:// or ssh:// URL, or podman:[URL]"));
            }
            Reach::Context(s.to_string())
        };
        Ok(EngineSpec { spec: s.to_string(), reach })
    }

    /// `--engines A,B` (or KUBE_BUILD_ENGINES): at least one, none twice.
    pub fn parse_list(what: &str, list: &str) -> Result<Vec<EngineSpec>> {
        let specs = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(EngineSpec::parse)
            .collect::<Result<Vec<_>>>()?;
        if specs.is_empty() {
            return Err(Fail::new(format!("{what}: no engine named")));
        }
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].contains(s) {
                return Err(Fail::new(format!("{what}: engine `{}` named twice", s.spec)));
            }
        }
        Ok(specs)
    }

    /// The engine program.
    pub fn kind(&self) -> Kind {
        match self.reach {
            Reach::Podman(_) => Kind::Podman,
            _ => Kind::Docker,
        }
    }

    pub fn program(&self) -> &'static str {
        self.kind().name()
    }

    /// The environment a run on this engine gets (the others' settings removed).
    pub fn env(&self) -> Vec<(&'static str, Option<String>)> {
        match &self.reach {
            Reach::Context(c) => vec![("DOCKER_CONTEXT", Some(c.clone())), ("DOCKER_HOST", None)],
            Reach::DockerHost(h) => vec![("DOCKER_HOST", Some(h.clone())), ("DOCKER_CONTEXT", None)],
            Reach::Podman(url) => vec![("CONTAINER_HOST", url.clone())],
        }
    }

    /// `p` with this engine's environment (see [`EngineSpec::env`]).
    pub fn apply_env(&self, mut p: kube_tree::proc::Proc) -> kube_tree::proc::Proc {
        for (k, v) in self.env() {
            p = match v {
                Some(v) => p.env(k, v),
                None => p.env_remove(k),
            };
        }
        p
    }

    /// A short stable tag for this engine's state files in the tree (`e` + 8 hex of its spec).
    pub fn tag(&self) -> StateTag {
        StateTag::of_hash(kube_tree::fnv::hash(self.spec.as_bytes()) as u32)
    }

    /// This engine's CLI, aimed at it by its own global flags (`--context`, `-H`, `--url`),
    /// whatever the environment says: a share's run and the clean-up after a failure use it.
    pub(crate) fn engine(&self, dry_run: bool) -> Result<Engine> {
        let (opts, unset, host): (Vec<&str>, _, _) = match &self.reach {
            Reach::Context(c) => (vec!["--context", c], vec!["DOCKER_HOST"], None),
            Reach::DockerHost(h) => (vec!["-H", h], vec!["DOCKER_CONTEXT"], Some(h.clone())),
            // Its URL says where it is (a podman over ssh is remote: rsync mode's lists go in
            // the data container, not a host directory).
            Reach::Podman(Some(u)) => (vec!["--url", u], vec!["CONTAINER_HOST"], Some(u.clone())),
            Reach::Podman(None) => (vec![], vec!["CONTAINER_HOST"], None),
        };
        let target = Target { opts: opts.into_iter().map(String::from).collect(), unset, host };
        Ok(Engine::new(Some(EngineChoice::of(self.kind())), dry_run)?.aimed(target))
    }
}

/// An `--engines` list the tests know is good.
#[cfg(test)]
pub(crate) fn specs(list: &str) -> Vec<EngineSpec> {
    EngineSpec::parse_list("--engines", list).unwrap()
}

#[cfg(test)]
mod tests {
    use super::{specs, EngineSpec, Reach};

    #[test]
    fn engine_entries_are_checked() {
        let s = specs("default, kit-second,unix:///tmp/kd1/docker.sock,tcp://10.0.0.2:2375,ssh://me@builder,podman:,podman:ssh://me@h/run/podman/podman.sock");
        assert_eq!(s[0].reach, Reach::Context("default".into()));
        assert_eq!(s[1].reach, Reach::Context("kit-second".into()));
        assert_eq!(s[2].reach, Reach::DockerHost("unix:///tmp/kd1/docker.sock".into()));
        assert_eq!(s[4].env(), [("DOCKER_HOST", Some("ssh://me@builder".into())), ("DOCKER_CONTEXT", None)]);
        assert_eq!(s[5].reach, Reach::Podman(None));
        assert_eq!(s[6].program(), "podman");
        assert_eq!(s[6].env(), [("CONTAINER_HOST", Some("ssh://me@h/run/podman/podman.sock".into()))]);
        assert_ne!(s[0].tag(), s[1].tag());
        assert!(s[0].tag().as_str().starts_with('e') && s[0].tag().as_str().len() == 9);
        for bad in ["", "a b", "-ctx", "ctx;rm", "http://x", "tcp://", "ssh://x'y", "podman:ftp://x", "a,a", "$(x)"] {
            assert!(EngineSpec::parse_list("--engines", bad).is_err(), "{bad:?} accepted");
        }
        // ssh would read these as its options (ProxyCommand runs a program); a port out of range.
        for bad in ["ssh://-oProxyCommand=touch%20x", "podman:ssh://-oProxyCommand=x@h", "ssh://-l@h", "tcp://h:0"] {
            assert!(EngineSpec::parse_list("--engines", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_engine_named_by_a_url_is_remote_or_local_by_it_without_asking() {
        // Known from the URL: no engine is asked (none runs here).
        for (spec, remote) in [
            ("tcp://10.0.0.2:2375", true),
            ("podman:ssh://me@h/run/podman/podman.sock", true),
            ("podman:unix:///run/podman/podman.sock", false),
        ] {
            let e = EngineSpec::parse(spec).unwrap().engine(true).unwrap();
            assert_eq!(e.is_remote(), remote, "{spec}");
        }
    }
}
