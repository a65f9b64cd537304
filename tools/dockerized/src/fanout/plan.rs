//! The fan-out plan: the platforms of the command, and their split over the engines by
//! measured cost.

use super::durations::Durations;
use super::engines::EngineSpec;
use super::release::{self, Packaging};
use kube_tree::{values, Fail, Tree};

type Result<T, E = Fail> = std::result::Result<T, E>;

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
    let release = release::request(tree, cmd, all)?;
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
    use crate::fanout::engines::specs;

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
