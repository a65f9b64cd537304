//! The fan-out plan: which engines (docker contexts, DOCKER_HOST-style URLs, `podman:`), the
//! platforms of the command, and their split by measured cost.

use super::release::Packaging;
use crate::{values, Cap, Fail, Result, Tree};
use std::collections::BTreeMap;

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
    pub fn program(&self) -> &'static str {
        match self.reach {
            Reach::Podman(_) => "podman",
            _ => "docker",
        }
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
    pub fn tag(&self) -> String {
        format!("e{:08x}", kube_tree::fnv::hash(self.spec.as_bytes()) as u32)
    }
}

/// What a fan-out builds: the platforms, the command each share runs for its part, and for a
/// release target the host's packaging afterwards.
pub struct Request {
    pub platforms: Vec<String>,
    pub cmd: Vec<String>,
    pub packaging: Option<Packaging>,
}

/// What the command builds for: `KUBE_BUILD_PLATFORMS` given as a make argument in the command
/// (taken out of it: a make argument would override each engine's share), else from the
/// environment, else the tree's whole list for `make cross`, else the list release.sh would
/// build for a release target (see [`super::release`]).
pub fn request(tree: &Tree, cmd: &[String]) -> Result<Request> {
    let platforms = kube_tree::scripts::GolangSh::read(tree)?.all_platforms();
    let all = || platforms.clone();
    let release = super::release::request(tree, cmd, all)?;
    let cmd = release.as_ref().map_or(cmd, |r| &r.share_cmd);
    let mut rest = Vec::new();
    let mut given = None;
    for w in cmd {
        match w.strip_prefix("KUBE_BUILD_PLATFORMS=") {
            Some(p) => given = Some(p.to_string()),
            None => rest.push(w.clone()),
        }
    }
    let given = given.or_else(|| std::env::var("KUBE_BUILD_PLATFORMS").ok().filter(|p| !p.trim().is_empty()));
    let list: Vec<String> = match given {
        Some(p) => p.split_whitespace().map(str::to_string).collect(),
        None => match release.as_ref().map(|r| r.default_platforms.clone()) {
            Some(p) => p,
            None => {
                let cross = rest.first().is_some_and(|m| m == "make") && rest.iter().skip(1).any(|t| t == "cross");
                if !cross {
                    return Err(Fail::new(
                        "nothing to fan out: set KUBE_BUILD_PLATFORMS (e.g. \"linux/amd64 linux/arm64\"), \
                         or run make cross or make quick-release",
                    ));
                }
                all()
            }
        },
    };
    let mut seen = Vec::new();
    for p in list {
        values::platform("KUBE_BUILD_PLATFORMS", &p)?;
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    if seen.is_empty() {
        return Err(Fail::new("KUBE_BUILD_PLATFORMS is empty: nothing to build"));
    }
    let packaging = release.map(|r| Packaging { platforms: seen.clone(), ..r.packaging });
    Ok(Request { platforms: seen, cmd: rest, packaging })
}

/// Seconds each platform took on each engine, by engine spec (`_output/dockerized/.kit-fanout-durations`).
pub type Durations = BTreeMap<String, BTreeMap<String, f64>>;

const DURATIONS: &str = "_output/dockerized/.kit-fanout-durations";

/// The measured durations (none yet: empty). A file that cannot be read is an error.
pub fn load_durations(tree: &Tree) -> Result<Durations> {
    let path = tree.path(DURATIONS);
    let Some(text) = tree.read_text(&path, Cap::SCRIPT)? else { return Ok(Durations::new()) };
    let d: Durations = serde_json::from_str(&text)
        .map_err(|e| Fail::new(format!("{path}: not a durations file ({e}); remove it to start afresh")))?;
    if d.values().flat_map(|m| m.values()).any(|s| !s.is_finite() || *s < 0.0) {
        return Err(Fail::new(format!("{path}: a negative or non-finite duration; remove it to start afresh")));
    }
    Ok(d)
}

pub fn save_durations(tree: &Tree, d: &Durations) -> Result<()> {
    let text = serde_json::to_string_pretty(d).map_err(|e| Fail::new(format!("durations: {e}")))?;
    tree.write_file(DURATIONS, text.as_bytes())
}

/// The platforms of each engine (in the order of `engines`), balanced by cost: the longest
/// first, each to the engine that would finish it soonest. A platform's cost on an engine is
/// its last measured duration there, else its mean on the others times [`COLD`] (its caches
/// there are cold, and a split that moves platforms between equal engines only loses them),
/// else the mean of what is known, else 1 (first time: an even split).
/// How much longer a platform is taken to build on an engine that has not built it yet.
pub const COLD: f64 = 1.25;

pub fn split(engines: &[EngineSpec], platforms: &[String], known: &Durations) -> Vec<Vec<String>> {
    let all: Vec<f64> = known.values().flat_map(|m| m.values().copied()).collect();
    let fallback = if all.is_empty() { 1.0 } else { all.iter().sum::<f64>() / all.len() as f64 };
    let cost = |e: &EngineSpec, p: &str| -> f64 {
        if let Some(d) = known.get(&e.spec).and_then(|m| m.get(p)) {
            return *d;
        }
        let elsewhere: Vec<f64> = known.values().filter_map(|m| m.get(p).copied()).collect();
        if elsewhere.is_empty() {
            fallback
        } else {
            COLD * elsewhere.iter().sum::<f64>() / elsewhere.len() as f64
        }
    };
    let mut order: Vec<&String> = platforms.iter().collect();
    let mean = |p: &str| engines.iter().map(|e| cost(e, p)).sum::<f64>() / engines.len() as f64;
    // Longest first; ties keep the given order (a stable sort).
    order.sort_by(|a, b| mean(b).partial_cmp(&mean(a)).unwrap_or(std::cmp::Ordering::Equal));
    let mut load = vec![0.0f64; engines.len()];
    let mut out = vec![Vec::new(); engines.len()];
    for p in order {
        let best = (0..engines.len())
            .min_by(|&a, &b| {
                (load[a] + cost(&engines[a], p))
                    .partial_cmp(&(load[b] + cost(&engines[b], p)))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("at least one engine");
        load[best] += cost(&engines[best], p);
        out[best].push(p.clone());
    }
    // Each share in the order the platforms were given.
    for share in &mut out {
        share.sort_by_key(|p| platforms.iter().position(|q| q == p));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &str) -> Vec<EngineSpec> {
        EngineSpec::parse_list("--engines", list).unwrap()
    }

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
        assert!(s[0].tag().starts_with('e') && s[0].tag().len() == 9);
        for bad in ["", "a b", "-ctx", "ctx;rm", "http://x", "tcp://", "ssh://x'y", "podman:ftp://x", "a,a", "$(x)"] {
            assert!(EngineSpec::parse_list("--engines", bad).is_err(), "{bad:?} accepted");
        }
        // ssh would read these as its options (ProxyCommand runs a program); a port out of range.
        for bad in ["ssh://-oProxyCommand=touch%20x", "podman:ssh://-oProxyCommand=x@h", "ssh://-l@h", "tcp://h:0"] {
            assert!(EngineSpec::parse_list("--engines", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_first_split_is_even_and_later_ones_follow_the_costs() {
        let e = specs("a,b");
        let p: Vec<String> = ["linux/amd64", "linux/arm64", "linux/s390x", "darwin/amd64"].map(String::from).to_vec();
        let first = split(&e, &p, &Durations::new());
        assert_eq!(first.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
        assert_eq!(first.concat().len(), 4);
        // Engine b is three times slower at everything: a gets three of the four.
        let mut d = Durations::new();
        for (eng, f) in [("a", 10.0), ("b", 30.0)] {
            d.insert(eng.into(), p.iter().map(|x| (x.clone(), f)).collect());
        }
        let later = split(&e, &p, &d);
        assert_eq!(later[0].len(), 3, "{later:?}");
        assert_eq!(later[1].len(), 1, "{later:?}");
        // One platform, two engines: one share is empty.
        let one = split(&e, &p[..1], &Durations::new());
        assert_eq!(one.iter().filter(|s| s.is_empty()).count(), 1);
        // The split stays where the caches are: what each engine built last, it builds again.
        let mut d = Durations::new();
        d.insert("a".into(), [("linux/amd64".to_string(), 216.0)].into());
        d.insert("b".into(), [("linux/arm64".to_string(), 310.0)].into());
        assert_eq!(split(&e, &p[..2], &d), [vec!["linux/amd64".to_string()], vec!["linux/arm64".to_string()]]);
        // A platform measured on one engine only costs about the same on the other.
        let mut d = Durations::new();
        d.insert("a".into(), [("linux/amd64".to_string(), 100.0), ("linux/arm64".to_string(), 1.0)].into());
        let s = split(&e, &p[..3], &d);
        assert!(s.iter().any(|share| share == &["linux/amd64".to_string()]), "the long one alone: {s:?}");
    }
}
