//! The data container: the tree's sources, caches and outputs live in its volumes between
//! builds. Made with empty volumes, or seeded from another data container ([`crate::seed`]): this
//! tree's on another branch, else another tree's (then its files keep the times they had there,
//! and rsync compares them by content: [`Times::Arrival`]).

use crate::arrival::Times;
use crate::containers::Containers;
use crate::job::Job;
use crate::labels::{CACHE_PRIVATE, LABEL_CACHE, LABEL_TIMES, TIMES_ARRIVAL};
use crate::layout::REMOTE_ROOT;
use crate::seed::Seeded;
use kube_tree::{log, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The data container a run uses.
pub(crate) struct DataContainer {
    /// Empty in a dry run.
    pub id: String,
    pub times: Times,
    /// Seeded from another tree's in this run: its first sync keeps the generated files.
    pub seeded_across: bool,
}

impl Job<'_> {
    /// The data container, reused or made. One that did not exit 0 is recreated (a stale data
    /// container was the cause of #20904).
    pub(crate) fn ensure_data_container(&self, containers: &Containers) -> Result<DataContainer> {
        let (engine, setup) = (self.engine, self.setup);
        let data = &setup.names.data;
        if let Some(c) = containers.get(data) {
            if c.exit_code() == Some(0) {
                return Ok(DataContainer { id: c.id.clone(), times: Times::of(Some(c)), seeded_across: false });
            }
            log::warn(format!("{data} is `{}`, not exited with 0: recreating it", c.status));
            engine.destroy(data);
        }
        let seed = self.seed_source(containers)?;
        let arrival = seed.as_ref().is_some_and(|s| s.arrival);
        self.create_data_container(arrival)?;
        let seeded = match &seed {
            Some(s) => self.seed_data_container(s)?,
            None => Seeded::NoSibling,
        };
        let times = match seeded {
            Seeded::From(_) if arrival => Times::Arrival,
            Seeded::From(_) => Times::Host,
            Seeded::NoSibling => {
                log::status_v(2, format!("{data} starts empty (no data container of this tree or another to seed it)"));
                Times::Host
            }
            Seeded::Failed => {
                engine.destroy(data);
                self.create_data_container(false)?;
                Times::Host
            }
        };
        let id = engine.query(&["inspect", "--format", "{{.Id}}", data])?.unwrap_or_default();
        let seeded_across = times == Times::Arrival && seed.is_some_and(|s| s.other_tree);
        Ok(DataContainer { id, times, seeded_across })
    }

    /// A data container with empty volumes (the caller's user owns them), labelled
    /// arrival-timed when it is to be seeded from another tree's.
    fn create_data_container(&self, arrival: bool) -> Result<()> {
        let (engine, setup) = (self.engine, self.setup);
        let data = &setup.names.data;
        let step = log::Step::start(format!("creating the data container {data}"));
        let mut args: Vec<String> =
            vec!["run".into(), "--name".into(), data.clone(), "--hostname".into(), setup.hostname.clone()];
        args.extend(setup.labels());
        if arrival {
            args.extend(["--label".into(), format!("{LABEL_TIMES}={TIMES_ARRIVAL}")]);
        }
        if setup.cache.is_none() {
            args.extend(["--label".into(), format!("{LABEL_CACHE}={CACHE_PRIVATE}")]);
        }
        args.extend(["--volume".into(), REMOTE_ROOT.into()]);
        for p in [
            "linux_386",
            "linux_amd64",
            "linux_arm",
            "linux_arm64",
            "linux_ppc64le",
            "darwin_amd64",
            "darwin_386",
            "windows_amd64",
            "windows_386",
        ] {
            args.extend(["--volume".into(), format!("/usr/local/go/pkg/{p}_cgo")]);
        }
        args.push(setup.names.image.clone());
        // The shared Go cache is mounted inside this volume: its mount point is made here, so
        // that it and its parents are the caller's, not the engine's (root's).
        args.extend([
            "sh".into(),
            "-c".into(),
            r#"mkdir -p "$1" && exec chown -R "$2" "$3" /usr/local/go/pkg/"#.into(),
        ]);
        args.extend([
            "data".into(),
            format!("{REMOTE_ROOT}/{}", crate::cache::CACHE_SUBPATH),
            setup.user.clone(),
            REMOTE_ROOT.into(),
        ]);
        engine.run(&args)?;
        step.done();
        Ok(())
    }
}
