//! The images: kube-cross (present, or pulled from a mirror) and the tree's kube-build image,
//! rebuilt only when its context changes; the rsync password.

use crate::containers::Containers;
use crate::engine::{proxy_env, Engine, Kind};
use crate::job::Job;
use crate::labels::{dockerfile_line, LABEL_CONTEXT, LABEL_OWNER, LABEL_TREE, OWNER};
use crate::md5;
use crate::password;
use crate::setup::{Mode, Setup};
use camino::Utf8Path;
use kube_tree::proc::Captured;
use kube_tree::{log, values, Cap, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// What the engine knows of the two images a run needs, asked in one call.
#[derive(Debug, Default, Clone)]
pub(crate) struct ImageFacts {
    /// kube-cross's image ID.
    pub cross_id: Option<String>,
    /// The tree's kube-build image: its ID and its context label (rsync mode only).
    pub image_id: Option<String>,
    pub context: Option<String>,
}

impl ImageFacts {
    const FORMAT: &'static str = "{{.Id}}\t{{json .Config.Labels}}";

    /// One `image inspect` of kube-cross and (rsync mode) the kube-build image.
    pub(crate) fn cmd(setup: &Setup) -> Vec<String> {
        let mut c: Vec<String> =
            ["image", "inspect", "--format", Self::FORMAT, &setup.cross_image].map(String::from).to_vec();
        if setup.mode == Mode::Rsync {
            c.push(setup.names.image.clone());
        }
        c
    }

    /// Reads the answer to [`ImageFacts::cmd`]. The engine answers a batch only when every
    /// image exists, so a failed batch (a first run, a missing image) is asked one by one.
    pub(crate) fn read(engine: &Engine, setup: &Setup, answer: Option<&Captured>) -> Result<ImageFacts> {
        let Some(answer) = answer else { return Ok(ImageFacts::default()) };
        // `{{.Id}}\t{{json .Config.Labels}}` -> (ID, labels)
        let fact = |l: &str| {
            let (id, labels) = l.split_once('\t').unwrap_or((l, ""));
            (id.to_string(), labels.to_string())
        };
        let lines: Vec<(String, String)> =
            if answer.success() { answer.stdout.lines().map(fact).collect() } else { Vec::new() };
        let wanted = if setup.mode == Mode::Rsync { 2 } else { 1 };
        let lines = if lines.len() == wanted {
            lines.into_iter().map(Some).collect()
        } else {
            let one = |name: &str| -> Result<Option<(String, String)>> {
                Ok(engine.query(&["image", "inspect", "--format", Self::FORMAT, name])?.as_deref().map(fact))
            };
            let mut v = vec![one(&setup.cross_image)?];
            if wanted == 2 {
                v.push(one(&setup.names.image)?);
            }
            v
        };
        let mut it = lines.into_iter();
        let cross = it.next().flatten();
        let image = it.next().flatten();
        Ok(ImageFacts {
            cross_id: cross.map(|c| c.0),
            context: image.as_ref().map(|i| label_of(&i.1, LABEL_CONTEXT)),
            image_id: image.map(|i| i.0),
        })
    }
}

/// A label's value out of `{{json .Config.Labels}}` (our values are plain hex or paths).
pub(crate) fn label_of(labels_json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    labels_json
        .find(&pat)
        .map(|i| &labels_json[i + pat.len()..])
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

/// Where kube-cross may come from besides the engine's own store, and what the user gave (so a
/// dead end never suggests what was already tried).
#[derive(Debug, Clone, Default)]
pub struct CrossSource {
    /// `--mirror REGISTRY[/PATH]`.
    pub mirror: Option<String>,
    /// `--mirror-short`: pull `MIRROR/kube-cross:TAG` instead of keeping the repository path.
    pub short: bool,
    /// How the image name was given (`--cross-image` or `KUBE_CROSS_IMAGE`), if it was.
    pub given: Option<&'static str>,
}

impl Job<'_> {
    /// kube-cross must be there (no registry is assumed reachable); `--mirror` pulls it from a mirror
    /// and tags it with the name the tree expects. Returns its image ID (empty in a dry run).
    pub(crate) fn ensure_cross_image(&self, source: &CrossSource, known: Option<String>) -> Result<String> {
        let (engine, setup) = (self.engine, self.setup);
        if let Some(id) = known {
            return Ok(id);
        }
        let inspect = || engine.image_id(&setup.cross_image);
        if let Some(id) = inspect()? {
            return Ok(id);
        }
        if let Some(m) = &source.mirror {
            values::registry("--mirror", m)?;
            self.pull_from_mirror(m, &mirror_names(&setup.cross_image, m, source.short))?;
            return Ok(inspect()?.unwrap_or_default());
        }
        if engine.dry_run {
            return Ok(String::new());
        }
        let other = match source.given {
            Some(how) => format!("or use another image than the one {how} names"),
            None => "or point KUBE_CROSS_IMAGE/--cross-image at one you have".to_string(),
        };
        Err(Fail::new(format!(
            "image {} is missing and no registry was asked: pull or load it, pass --mirror REGISTRY, {other}",
            setup.cross_image
        )))
    }

    /// Pulls the first of `names` the mirror has and tags it with the tree's name. Only "not
    /// found" moves on to the next name: a registry that did not answer or refused has no other.
    fn pull_from_mirror(&self, mirror: &str, names: &[String]) -> Result<()> {
        let (engine, setup) = (self.engine, self.setup);
        for (i, from) in names.iter().enumerate() {
            values::image_ref("--mirror image", from)?;
            let step = log::Step::start(format!("pulling {from}"));
            let failed = match engine.try_run(&pull_args(engine.kind(), mirror, from))? {
                Ok(_) => {
                    engine.run(&["tag", from, &setup.cross_image])?;
                    step.done();
                    log::status(format!("kube-cross pulled from {from}, tagged {}", setup.cross_image));
                    return Ok(());
                }
                Err(failed) => failed,
            };
            let why = PullFailure::of(&failed.out.stderr);
            if why == PullFailure::NotFound {
                if let Some(next) = names.get(i + 1) {
                    log::status(format!("{from} is not in the mirror; trying {next}"));
                    continue;
                }
            }
            let detail = failed.out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            return Err(Fail::new(format!("{} ({detail})", why.explain(mirror, names))));
        }
        Ok(())
    }
}

/// The names to pull kube-cross by from `mirror`, in order: the image's repository path kept
/// under the mirror (`registry.k8s.io/build-image/kube-cross:T` -> `M/build-image/kube-cross:T`,
/// as mirrors of a whole registry are laid out), then the short form `M/kube-cross:T` for
/// mirrors that flatten; only the short one with `short`.
pub fn mirror_names(cross_image: &str, mirror: &str, short: bool) -> Vec<String> {
    let m = mirror.trim_end_matches('/');
    // The first component names a registry when it has a dot or a port or is localhost (the
    // engines' own rule); otherwise the whole name is a Docker Hub path.
    let path = match cross_image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => cross_image,
    };
    let last = path.rsplit('/').next().unwrap_or(path);
    let (long, flat) = (format!("{m}/{path}"), format!("{m}/{last}"));
    if short {
        vec![flat]
    } else if long == flat {
        vec![long]
    } else {
        vec![long, flat]
    }
}

/// Why a pull failed, read from the engine's words: did the registry answer at all?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// No answer: refused, unresolvable, timed out, TLS or plain-HTTP mismatch.
    Unreachable,
    /// The registry answered: no such repository or tag.
    NotFound,
    /// The registry answered: authentication needed or access denied.
    Denied,
    /// Anything else (disk full, a bad manifest...): the engine's words are shown.
    Other,
}

impl PullFailure {
    pub fn of(stderr: &str) -> PullFailure {
        let s = stderr.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| s.contains(w));
        if any(&["manifest unknown", "not found", "name unknown", "does not exist", "404"]) {
            PullFailure::NotFound
        } else if any(&["unauthorized", "denied", "authentication required", "403", "forbidden"]) {
            PullFailure::Denied
        } else if any(&[
            "connection refused",
            "no such host",
            "timeout",
            "timed out",
            "network is unreachable",
            "no route to host",
            "connection reset",
            "tls:",
            "x509",
            "http response to https client",
            "dial tcp",
            "temporary failure in name resolution",
        ]) {
            PullFailure::Unreachable
        } else {
            PullFailure::Other
        }
    }

    /// The one line for the user: what the registry said (or that it said nothing) and the way on.
    pub fn explain(self, mirror: &str, tried: &[String]) -> String {
        let host = mirror.split('/').next().unwrap_or(mirror);
        let list = tried.join(" and ");
        match self {
            PullFailure::Unreachable => format!(
                "the registry {host} did not answer (pulling {list}): check the address, the proxy (HTTPS_PROXY) and the engine's network, or load kube-cross by hand (docker load)"
            ),
            PullFailure::NotFound => format!(
                "the registry {host} answered: no {list} there; name the mirror's path in --mirror (e.g. {host}/PATH), add --mirror-short for a flat mirror, or load kube-cross by hand"
            ),
            PullFailure::Denied => {
                format!("the registry {host} answered: access denied to {list}; log in first (docker login {host}) or use another mirror")
            }
            PullFailure::Other => format!("pulling {list} from {host} failed"),
        }
    }
}

/// `pull FROM`. docker treats registries on the loopback as plain HTTP by itself; podman needs
/// `--tls-verify=false` for them (any other plain-HTTP mirror is the user's registries.conf).
pub(crate) fn pull_args(kind: Kind, mirror: &str, from: &str) -> Vec<String> {
    let host = mirror.split('/').next().unwrap_or(mirror);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let mut args = vec!["pull".to_string()];
    if kind == Kind::Podman && loopback {
        args.push("--tls-verify=false".into());
    }
    args.push(from.to_string());
    args
}

/// The kube-build image's context as written: its hash (with kube-cross's ID) and whether the
/// Dockerfile names kube-cross through the scripts' placeholder.
struct ImageContext {
    hash: String,
    placeholder: bool,
}

impl Job<'_> {
    /// Builds `kube-build:build-<hash>-<version>` from the tree's build/build-image, unless the
    /// image there (`facts`) was built from the same context and the same kube-cross. Returns its
    /// ID and whether it was built now (empty and true in a dry run).
    pub(crate) fn build_image(&self, cross_id: &str, facts: &ImageFacts) -> Result<(String, bool)> {
        let (engine, setup) = (self.engine, self.setup);
        let ctx = setup.context_dir();
        if engine.dry_run {
            let args: Vec<String> =
                vec!["build".into(), "-t".into(), setup.names.image.clone(), "--pull=false".into(), ctx.to_string()];
            engine.run(&args)?;
            return Ok((String::new(), true));
        }
        let context = self.write_image_context(cross_id)?;
        if let (Some(id), Some(have)) = (&facts.image_id, &facts.context) {
            if *have == context.hash {
                log::status_v(2, format!("{} is up to date", setup.names.image));
                return Ok((id.clone(), false));
            }
        }
        let step = log::Step::start(format!("building {}", setup.names.image));
        // The labels are in the Dockerfile (see labels::dockerfile_line).
        let mut args: Vec<String> = vec!["build".into(), "-t".into(), setup.names.image.clone(), "--pull=false".into()];
        if !context.placeholder {
            let (repo, tag) = setup.cross_image.rsplit_once(':').unwrap_or((&setup.cross_image, ""));
            args.extend([
                "--build-arg".into(),
                format!("KUBE_CROSS_IMAGE={repo}"),
                "--build-arg".into(),
                format!("KUBE_CROSS_VERSION={tag}"),
            ]);
        }
        args.push(ctx.to_string());
        // The legacy builder fails when another build's image is removed meanwhile and takes a
        // cached layer the two share with it (two trees, or the tests, at once): once more.
        if let Err(e) = engine.run(&args) {
            if kube_tree::proc::interrupted() {
                return Err(e);
            }
            log::warn(format!("{e}: building once more"));
            engine.run(&args)?;
        }
        step.done();
        let id = engine.image_id(&setup.names.image)?.unwrap_or_default();
        Ok((id, true))
    }

    /// Writes the image's context (`_output/images/<image>`) from the tree's build/build-image,
    /// with the host's proxies, localtime and rsync password, and hashes it with `cross_id`.
    fn write_image_context(&self, cross_id: &str) -> Result<ImageContext> {
        let setup = self.setup;
        let ctx = setup.context_dir();
        setup.tree.confined(&ctx)?.create_dir_all()?;
        let src = Utf8Path::new("build/build-image");
        let read = |name: &str| {
            let rel = src.join(name);
            setup.tree.read_text(&rel, Cap::SCRIPT)?.ok_or_else(|| Fail::new(format!("{rel}: missing from the tree")))
        };
        let mut dockerfile = read("Dockerfile")?;
        let placeholder = dockerfile.contains("KUBE_BUILD_IMAGE_CROSS_TAG");
        if placeholder {
            // Era A style: the FROM line carries a placeholder the scripts sed; the whole image name
            // is written, so a --cross-image or mirror choice is honoured too.
            dockerfile = dockerfile
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("FROM ") && l.contains("KUBE_BUILD_IMAGE_CROSS_TAG") {
                        format!("FROM {}", setup.cross_image)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
        }
        for (env, v) in proxy_env() {
            dockerfile += &format!("ENV {env} {v}\n");
        }
        setup.tree.write_file(ctx.join("rsyncd.sh"), read("rsyncd.sh")?.as_bytes())?;
        let localtime = std::fs::read("/etc/localtime").unwrap_or_default();
        setup.tree.write_file(ctx.join("localtime"), &localtime)?;
        let dir = password::shared_dir();
        let owner = match &setup.cache {
            Some(volume) => password::Owner::SharedCache { dir: &dir, volume },
            None => password::Owner::Image,
        };
        password::ensure(&setup.tree, &setup.password_file(), owner)?;
        let mut key = dockerfile.as_bytes().to_vec();
        for f in ["rsyncd.sh", "localtime", "rsyncd.password"] {
            key.extend(setup.tree.confined(ctx.join(f))?.read_bytes(Cap::SCRIPT)?.unwrap_or_default());
        }
        key.extend(cross_id.as_bytes());
        let hash = md5::hex(&key);
        // The labels every tree of this context shares first (a step the layer cache keeps),
        // then this tree's. Not the branch's hash, which the image's name carries: a new
        // branch's image is then its sibling's, from the layer cache, with no step at all.
        dockerfile += &dockerfile_line(&[(LABEL_OWNER, OWNER), (LABEL_CONTEXT, &hash)])?;
        dockerfile += &dockerfile_line(&[(LABEL_TREE, setup.tree.root.as_str())])?;
        setup.tree.write_file(ctx.join("Dockerfile"), dockerfile.as_bytes())?;
        Ok(ImageContext { hash, placeholder })
    }

    /// Removes this tree's containers and images of other versions (the scripts' garbage
    /// collection). Images are listed only when this run built one: an image of another version
    /// can only appear with a version change, which makes a new image.
    pub(crate) fn remove_old_versions(&self, containers: &Containers, built: bool) -> Result<()> {
        let (engine, setup) = (self.engine, self.setup);
        if engine.dry_run {
            return Ok(());
        }
        // By this branch's name prefixes only: another branch's containers (same tree label)
        // are that branch's to keep, and the seed of this one's new data container.
        let current = [&setup.names.build, &setup.names.rsync, &setup.names.data];
        for name in containers.of_branch(setup) {
            if !current.contains(&&name) {
                log::status(format!("removing {name} (an older version of this tree's build)"));
                engine.destroy(&name);
            }
        }
        if built {
            for img in self.images_of_branch()? {
                if img != setup.names.image {
                    let _ = engine.run(&["rmi", &img]);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_out_of_the_inspect_json() {
        let json = r#"{"io.k8s-build-kit.context":"0123abcd","io.k8s-build-kit.owner":"k8s-build-kit"}"#;
        assert_eq!(label_of(json, "io.k8s-build-kit.context"), "0123abcd");
        assert_eq!(label_of("null", "io.k8s-build-kit.context"), "");
    }
}
