//! What the engine holds for this tree (one `ps -a`), and its kube-build images.

use crate::engine::{Engine, Kind};
use crate::job::Job;
use crate::labels::{LABEL_CACHE, LABEL_KEY, LABEL_TIMES, LABEL_TREE};
use crate::setup::Setup;
use kube_tree::proc::Captured;
use kube_tree::Fail;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// One container as `docker ps -a` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    pub id: String,
    pub name: String,
    /// Our tree label (empty on containers the scripts made).
    pub tree: String,
    /// Our reuse-key label (the rsync daemon's).
    pub key: String,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    /// `Exited (0) 3 minutes ago`, `Up 2 minutes`, ...
    pub status: String,
    /// `127.0.0.1:49153->8730/tcp`, ...
    pub ports: String,
    /// Our times label (a data container seeded from another tree's: `arrival`).
    pub times: String,
    /// Our cache label (a data container made with `--cache private`: `private`).
    pub cache: String,
}

impl Listed {
    /// The exit code of an exited container.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        let rest = self.status.strip_prefix("Exited (")?;
        rest[..rest.find(')')?].parse().ok()
    }

    /// The host port published for `container_port` on 127.0.0.1.
    pub(crate) fn host_port(&self, container_port: u16) -> Option<u16> {
        let suffix = format!("->{container_port}/tcp");
        self.ports.split(", ").find_map(|p| p.strip_suffix(&suffix)?.strip_prefix("127.0.0.1:")?.parse().ok())
    }
}

/// Every container of the engine from one `docker ps -a`: the reuse and garbage-collection
/// questions of a run are answered from it instead of an inspect each.
#[derive(Debug, Default)]
pub(crate) struct Containers(pub Vec<Listed>);

impl Containers {
    /// The one `ps -a` question, in the engine's own terms: docker's template knows `.Label`,
    /// podman's does not (and its `.State` is the long status), so podman answers in JSON.
    pub(crate) fn cmd(kind: Kind) -> Vec<String> {
        let format = match kind {
            Kind::Docker => {
                // Labels are anyone's text (a tab or a newline in one would forge a row), so
                // they come JSON-quoted; the other fields are docker's own words.
                let label = |k: &str| format!("{{{{json (.Label \"{k}\")}}}}");
                let fields = [
                    "{{.ID}}".to_string(),
                    "{{.Names}}".to_string(),
                    label(LABEL_TREE),
                    label(LABEL_KEY),
                    "{{.State}}".to_string(),
                    "{{.Status}}".to_string(),
                    "{{.Ports}}".to_string(),
                    label(LABEL_TIMES),
                    label(LABEL_CACHE),
                ];
                fields.join("\t")
            }
            Kind::Podman => "json".to_string(),
        };
        vec!["ps".into(), "-a".into(), "--no-trunc".into(), "--format".into(), format]
    }

    /// docker's tab-separated lines (see [`Containers::cmd`]); a line it cannot read whole is an
    /// error, never a guess.
    pub(crate) fn parse(text: &str) -> Result<Containers> {
        let bad = |l: &str, why: &str| Fail::new(format!("cannot read the engine's container list ({why}): {l:?}"));
        let mut rows = Vec::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = l.split('\t').collect();
            let [id, name, tree, key, state, status, ports, times, cache] = f[..] else {
                return Err(bad(l, "not 9 fields"));
            };
            let label = |v: &str| serde_json::from_str::<String>(v).map_err(|_| bad(l, "a label not a JSON string"));
            rows.push(Listed {
                id: id.to_string(),
                name: name.to_string(),
                tree: label(tree)?,
                key: label(key)?,
                state: state.to_string(),
                status: status.to_string(),
                ports: ports.to_string(),
                times: label(times)?,
                cache: label(cache)?,
            });
        }
        Ok(Containers(rows))
    }

    /// The lines docker prints for `rows` (tests).
    #[cfg(test)]
    pub(crate) fn docker_text(rows: &[Listed]) -> String {
        let q = |v: &str| serde_json::to_string(v).unwrap();
        rows.iter()
            .map(|r| {
                let f = [
                    &r.id,
                    &r.name,
                    &q(&r.tree),
                    &q(&r.key),
                    &r.state,
                    &r.status,
                    &r.ports,
                    &q(&r.times),
                    &q(&r.cache),
                ];
                format!("{}\n", f.map(String::as_str).join("\t"))
            })
            .collect()
    }

    /// podman's JSON array; its ports are put in docker's words (`127.0.0.1:PORT->8730/tcp`).
    pub(crate) fn parse_json(text: &str) -> Result<Containers> {
        use serde_json::Value;
        let list: Vec<Value> = serde_json::from_str(text.trim())
            .map_err(|e| Fail::new(format!("cannot read the engine's container list: {e}")))?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let label = |v: &Value, k: &str| {
            v.get("Labels").and_then(|l| l.get(k)).and_then(Value::as_str).unwrap_or("").to_string()
        };
        Ok(Containers(
            list.iter()
                .map(|c| Listed {
                    id: s(c, "Id"),
                    name: c.get("Names").and_then(|n| n.get(0)).and_then(Value::as_str).unwrap_or("").to_string(),
                    tree: label(c, LABEL_TREE),
                    key: label(c, LABEL_KEY),
                    times: label(c, LABEL_TIMES),
                    cache: label(c, LABEL_CACHE),
                    state: s(c, "State"),
                    status: s(c, "Status"),
                    ports: c
                        .get("Ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let n = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
                            format!(
                                "{}:{}->{}/{}",
                                s(p, "host_ip"),
                                n("host_port"),
                                n("container_port"),
                                s(p, "protocol")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect(),
        ))
    }

    /// Reads the answer to [`Containers::cmd`] (nothing in a dry run).
    pub(crate) fn read(kind: Kind, answer: Option<&Captured>) -> Result<Containers> {
        match answer {
            None => Ok(Containers::default()),
            Some(a) if a.success() && kind == Kind::Podman => Containers::parse_json(&a.stdout),
            Some(a) if a.success() => Containers::parse(&a.stdout),
            Some(a) => Err(Fail::new(format!("cannot list the engine's containers: {}", a.first_lines(1)))),
        }
    }

    pub(crate) fn list(engine: &Engine) -> Result<Containers> {
        let answer = engine.query_all(&[Containers::cmd(engine.kind())])?;
        Containers::read(engine.kind(), answer[0].as_ref())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Listed> {
        self.0.iter().find(|c| c.name == name)
    }

    /// This branch's containers, of any version: by name prefix (the scripts' scheme).
    pub(crate) fn of_branch(&self, setup: &Setup) -> Vec<String> {
        let prefixes = setup.names.prefixes();
        self.names_where(|c| prefixes.iter().any(|p| c.name.starts_with(&format!("{p}-")) || c.name == *p))
    }

    /// This tree's containers, every branch's: this branch's by name prefix (the scripts'
    /// scheme), the others' by our tree label.
    pub(crate) fn of_tree(&self, setup: &Setup) -> Vec<String> {
        let mut out = self.of_branch(setup);
        out.extend(self.names_where(|c| c.tree == setup.tree.root.as_str() && !out.contains(&c.name)));
        out.sort();
        out
    }

    fn names_where(&self, keep: impl Fn(&Listed) -> bool) -> Vec<String> {
        let mut out: Vec<String> = self.0.iter().filter(|c| keep(c)).map(|c| c.name.clone()).collect();
        out.sort();
        out
    }
}

impl Job<'_> {
    /// This tree's containers (see [`Containers::of_tree`]).
    pub(crate) fn containers_of(&self) -> Result<Vec<String>> {
        let (engine, setup) = (self.engine, self.setup);
        Ok(Containers::list(engine)?.of_tree(setup))
    }

    /// This branch's kube-build images (`kube-build:build-<hash>*`), of any version.
    pub(crate) fn images_of_branch(&self) -> Result<Vec<String>> {
        let prefix = format!("kube-build:build-{}", self.setup.names.hash);
        Ok(self.kube_build_images(&[])?.into_iter().filter(|i| i.starts_with(&prefix)).collect())
    }

    /// This tree's kube-build images, every branch's: this branch's by name, the others' by
    /// our tree label.
    pub(crate) fn images_of_tree(&self) -> Result<Vec<String>> {
        let label = format!("label={LABEL_TREE}={}", self.setup.tree.root);
        let mut all = self.images_of_branch()?;
        for img in self.kube_build_images(&["--filter", &label])? {
            if !all.contains(&img) {
                all.push(img);
            }
        }
        all.sort();
        Ok(all)
    }

    /// The engine's `kube-build` images (`REPO:TAG`, in docker's words), those `filter` keeps.
    fn kube_build_images(&self, filter: &[&str]) -> Result<Vec<String>> {
        let engine = self.engine;
        let mut args = vec!["images", "kube-build"];
        args.extend(filter);
        args.extend(["--format", "{{.Repository}}:{{.Tag}}"]);
        let listing = engine.query(&args)?.unwrap_or_default();
        Ok(listing.lines().map(|l| engine.listed_name(l).to_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::{Mode, Names, Setup};
    use camino::Utf8Path;
    use kube_tree::Tree;

    #[test]
    fn one_ps_listing_answers_reuse_and_garbage_collection() {
        let row = |id: &str, name: &str, tree: &str, state: &str, status: &str| Listed {
            id: id.into(),
            name: name.into(),
            tree: tree.into(),
            state: state.into(),
            status: status.into(),
            ..Listed::default()
        };
        let rows = [
            Listed {
                times: "arrival".into(),
                ..row(
                    "c1",
                    "kube-build-data-20178bb462-5-v1.15.5-1",
                    "/src/kubernetes",
                    "exited",
                    "Exited (0) 3 minutes ago",
                )
            },
            Listed {
                key: "abc".into(),
                ports: "127.0.0.1:49153->8730/tcp".into(),
                ..row("c2", "kube-rsync-20178bb462-5-v1.15.5-1", "/src/kubernetes", "running", "Up 2 minutes")
            },
            row("c3", "kube-build-data-20178bb462-5-v1.14.0-1", "", "exited", "Exited (137) 2 days ago"),
            Listed {
                ports: "0.0.0.0:8080->80/tcp, :::8080->80/tcp".into(),
                ..row("c4", "other", "", "created", "Created")
            },
        ];
        let text = Containers::docker_text(&rows);
        let l = Containers::parse(&text).unwrap();
        assert_eq!(l.0, rows);
        assert_eq!(l.0.len(), 4);
        assert_eq!(l.get("kube-build-data-20178bb462-5-v1.15.5-1").unwrap().exit_code(), Some(0));
        assert_eq!(l.get("kube-build-data-20178bb462-5-v1.14.0-1").unwrap().exit_code(), Some(137));
        // The times label: a data container seeded from another tree's.
        let arrival = l.get("kube-build-data-20178bb462-5-v1.15.5-1");
        assert_eq!(crate::arrival::Times::of(arrival), crate::arrival::Times::Arrival);
        assert_eq!(crate::arrival::Times::of(l.get("other")), crate::arrival::Times::Host);
        let rsync = l.get("kube-rsync-20178bb462-5-v1.15.5-1").unwrap();
        assert_eq!((rsync.key.as_str(), rsync.state.as_str(), rsync.exit_code()), ("abc", "running", None));
        assert_eq!(rsync.host_port(8730), Some(49153));
        // Published elsewhere than 127.0.0.1, or another port: not ours to use.
        assert_eq!(l.get("other").unwrap().host_port(80), None);
        assert_eq!(rsync.host_port(873), None);
        assert_eq!(l.get("other").unwrap().exit_code(), None);

        let tree = kube_tree::fixture::scratch_tree("dockerized-ps", &kube_tree::fixture::Spec::era_b());
        let tree = Tree::open(&tree).unwrap();
        let names = Names::new("host", Utf8Path::new("/src/kubernetes"), "master", "5-v1.15.5-1");
        let setup = Setup {
            tree,
            mode: Mode::Rsync,
            names,
            cross_image: String::new(),
            hostname: "host".into(),
            user: "0:0".into(),
            cache: None,
            state_tag: None,
            platforms: None,
            rsync_port: None,
        };
        // By name prefix (the scripts' containers carry no label), of any version.
        assert_eq!(setup.names.hash, "20178bb462");
        assert_eq!(
            l.of_tree(&setup),
            [
                "kube-build-data-20178bb462-5-v1.14.0-1",
                "kube-build-data-20178bb462-5-v1.15.5-1",
                "kube-rsync-20178bb462-5-v1.15.5-1"
            ]
        );
        // Another branch of the same tree (its own name hash, our tree label): the tree's, not
        // this branch's (a run removes only this branch's older versions).
        let branch = row(
            "c5",
            "kube-build-data-0123456789-5-v1.15.5-1",
            setup.tree.root.as_str(),
            "exited",
            "Exited (0) 1 hour ago",
        );
        let l = Containers::parse(&format!("{text}{}", Containers::docker_text(&[branch]))).unwrap();
        assert!(l.of_tree(&setup).contains(&"kube-build-data-0123456789-5-v1.15.5-1".to_string()));
        assert_eq!(l.of_branch(&setup).len(), 3, "{:?}", l.of_branch(&setup));
    }

    #[test]
    fn a_label_cannot_forge_a_row() {
        // Anyone who can make a container on the engine chooses its labels.
        let forged =
            "x\nc9\tkube-build-data-20178bb462-5-v1.15.5-1\t/src/kubernetes\t\texited\tExited (0) now\t\tarrival\t";
        let rows = [Listed { id: "c1".into(), name: "theirs".into(), tree: forged.into(), ..Listed::default() }];
        let l = Containers::parse(&Containers::docker_text(&rows)).unwrap();
        assert_eq!(l.0.len(), 1);
        assert_eq!(l.0[0].tree, forged);
        assert!(l.get("kube-build-data-20178bb462-5-v1.15.5-1").is_none());
        // The old unquoted listing, or a line cut short: an error, not a guess.
        for bad in ["c1\tname\t/src/k\t\texited\tExited (0) now\t\t\t\n", "c1\tname\n"] {
            assert!(Containers::parse(bad).is_err(), "{bad:?}");
        }
    }
}
