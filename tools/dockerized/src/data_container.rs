//! The data container: the tree's sources, caches and outputs live in its volumes between
//! builds. Made with empty volumes, or for a new branch seeded from a sibling's ([`crate::seed`]).

use crate::containers::Containers;
use crate::job::Job;
use crate::layout::REMOTE_ROOT;
use crate::seed::Seeded;
use kube_tree::{log, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

impl Job<'_> {
    /// The data container, reused or made. One that did not exit 0 is recreated (a stale data
    /// container was the cause of #20904). Returns its ID (empty in a dry run).
    pub(crate) fn ensure_data_container(&self, containers: &Containers) -> Result<String> {
        let (engine, setup) = (self.engine, self.setup);
        let data = &setup.names.data;
        if let Some(c) = containers.get(data) {
            if c.exit_code() == Some(0) {
                return Ok(c.id.clone());
            }
            log::warn(format!("{data} is `{}`, not exited with 0: recreating it", c.status));
            engine.destroy(data);
        }
        self.create_data_container()?;
        match self.seed_data_container(containers)? {
            Seeded::From(_) => {}
            Seeded::NoSibling => {
                log::status_v(2, format!("{data} starts empty (this tree has no other branch's to seed it)"))
            }
            Seeded::Failed => {
                engine.destroy(data);
                self.create_data_container()?;
            }
        }
        Ok(engine.query(&["inspect", "--format", "{{.Id}}", data])?.unwrap_or_default())
    }

    /// A data container with empty volumes (the caller's user owns them).
    fn create_data_container(&self) -> Result<()> {
        let (engine, setup) = (self.engine, self.setup);
        let data = &setup.names.data;
        let step = log::Step::start(format!("creating the data container {data}"));
        let mut args: Vec<String> =
            vec!["run".into(), "--name".into(), data.clone(), "--hostname".into(), setup.hostname.clone()];
        args.extend(setup.labels());
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
