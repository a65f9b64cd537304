//! rsync mode: the daemon container, the sync in and the copy out with the tree's own filters.

use crate::arrival::{date_generated, protect_rules, written_generated, Times};
use crate::containers::Containers;
use crate::engine::Cleanup;
use crate::job::Job;
use crate::labels::LABEL_KEY;
use crate::md5;
use crate::sync::{self, ListAt};
use camino::Utf8PathBuf;
use kube_tree::proc::Proc;
use kube_tree::{log, Cap, Fail, Tree};
use std::time::Duration;

type Result<T, E = Fail> = std::result::Result<T, E>;

/// A running rsync daemon container and where to reach it.
pub(crate) struct Rsyncd {
    pub addr: String,
    /// The container's ID (empty in a dry run).
    pub id: String,
    /// Left running by an earlier run and taken over (not started now).
    pub reused: bool,
}

impl Rsyncd {
    /// The tree's module on the daemon, as rsync's source or destination.
    pub(crate) fn module(&self) -> String {
        format!("rsync://k8s@{}/k8s/", self.addr)
    }
}

/// What an rsync daemon must have been started from to be reused: the kube-build image (whose
/// password it holds), the data container (whose volumes it serves), the user and the requested
/// port. A daemon serving a data container that was since replaced would sync into orphaned
/// volumes; the key rules that out.
pub(crate) fn rsyncd_key(image_id: &str, data_id: &str, user: &str, port: Option<u16>) -> String {
    let port = port.map(|p| p.to_string()).unwrap_or_default();
    md5::hex(format!("{image_id}\n{data_id}\n{user}\n{port}").as_bytes())[..16].to_string()
}

/// Whether a daemon is left running for the next run (`KUBE_RSYNC_KEEP`, default yes): starting
/// one and waiting for it to answer is most of a no-op run's cost.
pub(crate) fn keep_rsyncd() -> bool {
    !std::env::var("KUBE_RSYNC_KEEP")
        .is_ok_and(|v| v.eq_ignore_ascii_case("n") || v == "0" || v.eq_ignore_ascii_case("no"))
}

pub(crate) fn port_taken(port: &str) -> Fail {
    Fail::new(format!(
        "rsync port 127.0.0.1:{port} is taken: unset KUBE_RSYNC_PORT for an ephemeral port, or choose another"
    ))
}

impl Job<'_> {
    /// Reuses the tree's rsync daemon when `listed` shows it running with `key`; otherwise starts
    /// one, published on 127.0.0.1 only (`KUBE_RSYNC_PORT` or an ephemeral port), and waits until
    /// it answers. It is on `cleanup` either way: the caller takes it off to keep it.
    pub(crate) fn start_rsyncd(&self, key: &str, listed: Option<&Containers>, cleanup: &mut Cleanup) -> Result<Rsyncd> {
        let (engine, setup) = (self.engine, self.setup);
        let name = &setup.names.rsync;
        cleanup.names.push(name.clone());
        let current = listed.map(|l| l.get(name));
        if let Some(Some(c)) = current {
            if c.state == "running" && !key.is_empty() && c.key == key {
                if let Some(p) = c.host_port(8730) {
                    log::status_v(2, format!("reusing the rsync daemon {name} on 127.0.0.1:{p}"));
                    return Ok(Rsyncd { addr: format!("127.0.0.1:{p}"), id: c.id.clone(), reused: true });
                }
            }
        }
        if current != Some(None) {
            engine.destroy(name);
        }
        let port = setup.rsync_port.map(|p| p.to_string()).unwrap_or_default();
        // A pinned port that something else holds: say so before docker does (or, where the engine
        // publishes through iptables instead of a proxy, silently does not).
        if let Ok(p) = port.parse::<u16>() {
            if !engine.dry_run && !engine.is_remote() && std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                return Err(port_taken(&port));
            }
        }
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--user".into(),
            setup.user.clone(),
            "--hostname".into(),
            setup.hostname.clone(),
        ];
        args.extend(["--volumes-from".into(), setup.names.data.clone()]);
        args.extend(setup.labels());
        args.extend(["--label".into(), format!("{LABEL_KEY}={key}")]);
        args.extend(["-p".into(), format!("127.0.0.1:{port}:8730"), setup.names.image.clone(), "/rsyncd.sh".into()]);
        let id = match engine.try_run(&args)? {
            Ok(out) => out.stdout.trim().to_string(),
            Err(f) if f.says("already allocated") || f.says("address already in use") => return Err(port_taken(&port)),
            Err(f) => return Err(f.into_fail()),
        };
        if engine.dry_run {
            return Ok(Rsyncd {
                addr: format!("127.0.0.1:{}", if port.is_empty() { "PORT" } else { &port }),
                id,
                reused: false,
            });
        }
        let mapped = engine
            .query(&["port", name, "8730"])?
            .ok_or_else(|| Fail::new("could not get the effective rsync port (the rsync container did not come up)"))?;
        let port = mapped.lines().next().and_then(|l| l.rsplit(':').next()).unwrap_or("").to_string();
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            let probe = Proc::new("rsync")
                .arg(format!("rsync://k8s@{addr}/"))
                .arg(format!("--password-file={}", setup.password_file()))
                .timeout(kube_tree::proc::PROBE)
                .output()?;
            if probe.success() {
                return Ok(Rsyncd { addr, id, reused: false });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs = engine.query(&["logs", "--tail", "3", name])?.unwrap_or_default();
        Err(Fail::new(format!("could not connect to the rsync container at {addr}: {}", logs.replace('\n', " | "))))
    }
}

/// The filters the tree's own common.sh passes in `function` (so each era syncs what it always did).
pub(crate) fn tree_filters(tree: &Tree, function: &str) -> Result<Vec<String>> {
    let common = tree.read_text("build/common.sh", Cap::SCRIPT)?.unwrap_or_default();
    let Some(start) = common.find(&format!("function {function}()")) else { return Ok(Vec::new()) };
    let body = &common[start..];
    let body = &body[..body.find("\n}").unwrap_or(body.len())];
    Ok(body.split("--filter='").skip(1).filter_map(|f| f.split_once('\'').map(|x| x.0.to_string())).collect())
}

/// Sources in: everything but outputs. Unlike the era-A scripts, generated files are not hidden
/// (Era B stopped doing that): deleting them in the container made every build regenerate them.
/// `.git` stays out, as in the scripts (the image reads the version from a file instead).
pub(crate) const SYNC_IN_FILTERS: &[&str] = &["H /.git", "- /.make/", "- /_tmp/", "- /_output/", "- /"];

/// Output back: binaries and generated files (Era B list; the tree's own is used when it has one).
pub(crate) const COPY_OUT_FILTERS: &[&str] = &[
    "- /_temp/",
    "+ /vendor/",
    "+ /staging/***/Godeps/**",
    "+ /_output/dockerized/bin/**",
    "- /_output/dockerized/go/**",
    "+ zz_generated.*",
    "+ generated.proto",
    "+ *.pb.go",
    "+ types.go",
    "+ */",
    "- /**",
];

impl Job<'_> {
    /// Runs one rsync against the daemon; returns its stdout (the itemized list, when asked for).
    /// `--modify-window=-1`: rsync's quick check compares whole seconds by default, so a file
    /// rewritten at the same size within the second of the copy on the other side was skipped,
    /// a source on the way in (the build used the old bytes) or an output on the way out (the
    /// tree kept the last run's binary); build/run.sh's syncs have the same hole. With it the
    /// check takes nanoseconds too (rsync 3.1.3 and later, over the daemon protocol as well).
    pub(crate) fn rsync(&self, extra: &[String], src: &str, dst: &str, label: &str) -> Result<String> {
        let (engine, setup) = (self.engine, self.setup);
        let mut p = Proc::new("rsync")
            .args(["--archive", "--modify-window=-1"])
            .arg(format!("--password-file={}", setup.password_file()));
        if kube_tree::log::level() >= 6 {
            p = p.arg("-iv");
        }
        if let Some(c) = std::env::var("KUBE_RSYNC_COMPRESS").ok().filter(|c| c != "0" && !c.is_empty()) {
            p = p.arg(format!("--compress-level={c}"));
        }
        let p = p.args(extra).arg(src).arg(dst);
        if engine.planned(&p) {
            return Ok(String::new());
        }
        let step = log::Step::start(label);
        let out = p.output_with_progress(label, Duration::from_secs(15))?;
        if !out.success() {
            return Err(Fail::new(format!("{label} failed: {}", out.first_lines(3).replace('\n', " | "))));
        }
        step.done();
        Ok(out.stdout)
    }

    /// The sources into the data container (`times`: how its files carry their times; see
    /// [`crate::arrival`] for an arrival-timed one). Just after a seed from another worktree
    /// (`seeded_across`), the generated files git ignores stay, though this tree has none yet:
    /// they are what spares their generation, and make regenerates each one whose inputs differ.
    pub(crate) fn sync_in(&self, rsyncd: &Rsyncd, times: Times, seeded_across: bool) -> Result<()> {
        let setup = self.setup;
        let mut args: Vec<String> = vec!["--delete".into()];
        args.extend(times.sync_in_args().iter().map(|a| a.to_string()));
        if seeded_across {
            args.extend(protect_rules(&setup.tree)?);
        }
        args.extend(SYNC_IN_FILTERS.iter().map(|f| format!("--filter={f}")));
        let label = "syncing sources into the data container";
        let itemized = self.rsync(&args, &format!("{}/", setup.tree.root), &rsyncd.module(), label)?;
        match times {
            Times::Arrival => self.age(rsyncd, &written_generated(&itemized)),
            Times::Host => Ok(()),
        }
    }
}

/// The copy-out filters: the tree's own, with the container GOPATH excluded where the tree does
/// not exclude it yet (later Era B trees do, after the bin rule). Without it, `+ */` walks the
/// whole Go cache of the data container on every copy-out, for nothing: no file there matches.
pub(crate) fn copy_out_filters(tree: &Tree) -> Result<Vec<String>> {
    let mut filters = tree_filters(tree, "kube::build::copy_output")?;
    if filters.is_empty() {
        return Ok(COPY_OUT_FILTERS.iter().map(|s| s.to_string()).collect());
    }
    if !filters.iter().any(|f| f.contains("/_output/dockerized/go")) {
        let at = filters.iter().position(|f| f == "+ /_output/dockerized/bin/**").map_or(0, |i| i + 1);
        filters.insert(at, "- /_output/dockerized/go/**".into());
    }
    Ok(filters)
}

impl Job<'_> {
    /// Files the command rewrote in the data container and the copy-out left there: the volume
    /// still equals the tree if their content is the same on both sides (one dry-run rsync by
    /// checksum, of these files only). Err says which one differs.
    pub(crate) fn same_content(&self, rsyncd: &Rsyncd, files: &[String]) -> Result<(), String> {
        let setup = self.setup;
        if files.is_empty() {
            return Ok(());
        }
        let list = setup.tree.path(&setup.state_file(".kit-compare"));
        let compare = || -> Result<String> {
            setup.tree.write_file(&list, (files.join("\n") + "\n").as_bytes())?;
            self.rsync(
                &sync::same_content_args(&list),
                &rsyncd.module(),
                setup.tree.root.as_str(),
                "comparing what the command rewrote with the tree",
            )
        };
        let answer = compare();
        let _ = setup.tree.remove_file(&list);
        let itemized = answer.map_err(|e| e.msg)?;
        match sync::differs(files, &itemized) {
            None => Ok(()),
            Some(f) => Err(format!("{f} changed and stays in the container (the copy-out filters leave it there)")),
        }
    }
}

/// How much a copy-out looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyOut<'a> {
    /// The whole data container, through the tree's filters (copy-output, build/copy-output.sh).
    Full,
    /// The same, after a wrapped command (bringing its change list back when it is in the data
    /// container).
    Everything(&'a ListAt),
    /// Only the entries on the wrapper's change list, through the same filters.
    Changed(&'a ListAt),
}

impl Job<'_> {
    /// Output back, through the tree's filters. Returns rsync's itemized list (`%i %n`, every entry
    /// looked at) for [`sync::settle`].
    pub(crate) fn copy_out(&self, rsyncd: &Rsyncd, how: CopyOut, times: Times) -> Result<String> {
        let setup = self.setup;
        let mut filters = copy_out_filters(&setup.tree)?;
        if let CopyOut::Everything(ListAt::Volume(list)) | CopyOut::Changed(ListAt::Volume(list)) = how {
            filters = sync::with_list(&filters, list);
        }
        let mut args: Vec<String> = vec!["--prune-empty-dirs".into(), "-ii".into(), "--out-format=%i %n".into()];
        args.extend(times.copy_out_args().iter().map(|a| a.to_string()));
        match how {
            // Read on the daemon's side, relative to the module (the tree).
            CopyOut::Changed(ListAt::Volume(list)) => args.push(format!("--files-from=:{list}")),
            CopyOut::Changed(at) => args.push(format!("--files-from={}", at.host_path(&setup.tree))),
            _ => {}
        }
        args.extend(filters.iter().map(|f| format!("--filter={f}")));
        let label = if matches!(how, CopyOut::Changed(_)) {
            "copying what the command changed out of the data container"
        } else {
            "copying output out of the data container"
        };
        let itemized = self.rsync(&args, &rsyncd.module(), setup.tree.root.as_str(), label)?;
        match times {
            Times::Arrival if !self.engine.dry_run => date_generated(&setup.tree, &itemized),
            _ => Ok(itemized),
        }
    }
}

impl Job<'_> {
    /// Gives `files` (generated files the sync just wrote) the epoch's first second in the data
    /// container: a copy of each, so dated, from a scratch directory outside the tree, by
    /// content (the same bytes: only the time moves).
    pub(crate) fn age(&self, rsyncd: &Rsyncd, files: &[String]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let tree = &self.setup.tree;
        // The share's tag too: a fan-out's shares are threads of one process, on one tree.
        let tag = self.setup.state_tag.as_ref().map_or("", |t| t.as_str());
        let scratch = Utf8PathBuf::from_path_buf(std::env::temp_dir())
            .map_err(|p| Fail::new(format!("{}: the temp directory is not UTF-8", p.display())))?
            .join(format!("kit-aged-{}-{}{tag}", std::process::id(), self.setup.names.hash));
        let staged = (|| -> Result<()> {
            for rel in files {
                let bytes = tree
                    .confined(rel)?
                    .read_bytes(Cap::SOURCE)?
                    .ok_or_else(|| Fail::new(format!("{rel}: gone from the tree since the sync")))?;
                let copy = scratch.join("files").join(rel);
                fs_err::create_dir_all(copy.parent().expect("a file has a parent"))?;
                fs_err::write(&copy, bytes)?;
                filetime::set_file_mtime(&copy, filetime::FileTime::from_unix_time(1, 0))?;
            }
            fs_err::write(scratch.join("list"), files.join("\n") + "\n")?;
            Ok(())
        })();
        let aged = staged.and_then(|()| {
            let list = format!("--files-from={}", scratch.join("list"));
            let args = [list, "--times".into(), "--checksum".into()];
            let src = format!("{}/", scratch.join("files"));
            self.rsync(&args, &src, &rsyncd.module(), "dating the generated files the sync wrote before their inputs")
        });
        let _ = fs_err::remove_dir_all(&scratch);
        aged.map(|_| {
            log::status_v(2, format!("{} generated file(s) the sync wrote will be generated again", files.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_out_excludes_the_container_gopath_once() {
        let root = kube_tree::fixture::scratch_tree("dockerized-filters", &kube_tree::fixture::Spec::era_b());
        let v120 = "function kube::build::copy_output() {\n  kube::build::rsync \\\n    --prune-empty-dirs \\\n    --filter='- /_temp/' \\\n    --filter='+ /_output/dockerized/bin/**' \\\n    --filter='+ types.go' \\\n    --filter='+ */' \\\n    --filter='- /**' \\\n    \"rsync://k8s@${KUBE_RSYNC_ADDR}/k8s/\" \"${KUBE_ROOT}\"\n}\n";
        std::fs::write(root.join("build/common.sh"), v120).unwrap();
        let tree = Tree::open(&root).unwrap();
        assert_eq!(
            copy_out_filters(&tree).unwrap(),
            ["- /_temp/", "+ /_output/dockerized/bin/**", "- /_output/dockerized/go/**", "+ types.go", "+ */", "- /**"]
        );
        // A tree that excludes it already is left as it is.
        std::fs::write(root.join("build/common.sh"), v120.replace("+ types.go", "- /_output/dockerized/go/**"))
            .unwrap();
        let f = copy_out_filters(&tree).unwrap();
        assert_eq!(f.iter().filter(|f| f.contains("dockerized/go")).count(), 1, "{f:?}");
        // No function at all: the Era B list.
        std::fs::write(root.join("build/common.sh"), "").unwrap();
        assert_eq!(copy_out_filters(&tree).unwrap(), COPY_OUT_FILTERS);
    }

    #[test]
    fn the_rsyncd_key_changes_with_what_the_daemon_serves() {
        let k = rsyncd_key("sha256:img", "data1", "1000:1000", None);
        assert_eq!(k.len(), 16);
        assert_eq!(k, rsyncd_key("sha256:img", "data1", "1000:1000", None));
        assert_ne!(k, rsyncd_key("sha256:img", "data2", "1000:1000", None), "a replaced data container");
        assert_ne!(k, rsyncd_key("sha256:img2", "data1", "1000:1000", None), "a rebuilt image (new password)");
        assert_ne!(k, rsyncd_key("sha256:img", "data1", "0:0", None), "another user");
        assert_ne!(k, rsyncd_key("sha256:img", "data1", "1000:1000", Some(20001)), "another port asked for");
    }
}
