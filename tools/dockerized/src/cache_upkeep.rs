//! The shared Go cache volume around a build (see [`crate::cache`]): made ready before the
//! build container starts, named when a build on it fails, kept under its cap after.

use crate::cache::{cache_max, failure_hint, volume_owner, CACHE_KIND, CACHE_SUBPATH, CACHE_VOLUME_VAR, LABEL_KIND};
use crate::job::Job;
use crate::labels::{LABEL_OWNER, OWNER};
use crate::setup::Mode;
use kube_tree::{log, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Where the one-off containers (preparing and trimming) mount the volume.
const ONE_OFF_TARGET: &str = "/kit-go-cache";
/// The tree's state file that says when the cache was last trimmed from it.
const TRIMMED: &str = "_output/dockerized/.kit-cache-trimmed";
/// How often a tree's builds check the cap (Go itself trims at most once a day).
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Job<'_> {
    /// Makes the shared volume ready before the build container starts: created with the kit's
    /// labels and opened to every user (a fresh volume is root's 0755; the build runs as the
    /// caller), by a one-off container of `image` (already present). A volume of that name that
    /// is not the kit's is refused. In bind mode the mount point is made in the tree first, as
    /// the caller, so the engine does not make root-owned directories in the user's checkout.
    pub(crate) fn prepare_cache(&self, image: &str) -> Result<()> {
        let (engine, setup) = (self.engine, self.setup);
        let Some(volume) = &setup.cache else { return Ok(()) };
        if setup.mode == Mode::Bind && !engine.dry_run {
            setup.tree.confined(CACHE_SUBPATH)?.create_dir_all()?;
        }
        match volume_owner(engine, volume)? {
            Some(o) if o == OWNER => return Ok(()),
            Some(_) => {
                return Err(Fail::new(format!(
                    "a volume {volume} exists and is not the kit's (no {LABEL_OWNER}={OWNER} label): set {CACHE_VOLUME_VAR} to another name, or use --cache private"
                )))
            }
            None => {}
        }
        let step = log::Step::start(format!("creating the shared Go cache volume {volume}"));
        engine.run(&[
            "volume".to_string(),
            "create".into(),
            "--label".into(),
            format!("{LABEL_OWNER}={OWNER}"),
            "--label".into(),
            format!("{LABEL_KIND}={CACHE_KIND}"),
            volume.clone(),
        ])?;
        let mount = format!("{volume}:{ONE_OFF_TARGET}");
        let opened = engine.run(&[
            "run",
            "--rm",
            "--user=0:0",
            "--volume",
            mount.as_str(),
            "--entrypoint",
            "chmod",
            image,
            "1777",
            ONE_OFF_TARGET,
        ]);
        if let Err(e) = opened {
            let _ = engine.run(&["volume", "rm", volume.as_str()]);
            return Err(e);
        }
        step.done();
        Ok(())
    }

    /// After the build container: a failed build on the shared cache names it (how to rule it
    /// out), and the cache is kept under its cap.
    pub(crate) fn after_build(&self, status: Option<&std::process::ExitStatus>) {
        let (engine, setup) = (self.engine, self.setup);
        let Some(volume) = &setup.cache else { return };
        if status.is_some_and(|s| !s.success()) && !kube_tree::proc::interrupted() {
            log::warn(failure_hint(volume, &engine.program));
        }
        let image = match setup.mode {
            Mode::Rsync => &setup.names.image,
            Mode::Bind => &setup.cross_image,
        };
        if let Err(e) = self.trim_cache(image) {
            log::warn(format!("the Go cache {volume} was not trimmed: {}", e.msg));
        }
    }

    /// Keeps the build cache under [`cache_max`]: the least recently used entries go first (Go
    /// refreshes an entry's mtime when it uses it), by a one-off container of `image`. Only the
    /// build cache's entry directories are trimmed, never the module cache (a module missing a
    /// file would be a broken module, not a cache miss). At most once an hour per tree.
    pub(crate) fn trim_cache(&self, image: &str) -> Result<()> {
        let (engine, setup) = (self.engine, self.setup);
        let Some(volume) = &setup.cache else { return Ok(()) };
        if engine.dry_run || kube_tree::proc::interrupted() {
            return Ok(());
        }
        let max = cache_max()?;
        let recent = std::fs::metadata(setup.tree.path(TRIMMED))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < TRIM_EVERY);
        if recent {
            return Ok(());
        }
        let mount = format!("{volume}:{ONE_OFF_TARGET}");
        let max = max.to_string();
        let out = engine.run(&[
            "run",
            "--rm",
            "--user=0:0",
            "--volume",
            mount.as_str(),
            "--workdir",
            ONE_OFF_TARGET,
            "--entrypoint",
            "sh",
            image,
            "-c",
            TRIM_SCRIPT,
            "trim",
            max.as_str(),
        ])?;
        log::status_v(2, format!("Go cache {volume} (cap {max} bytes): {}", out.stderr.trim()));
        setup.tree.write_file(TRIMMED, b"")?;
        Ok(())
    }
}

/// Newest first, entries past the cap are removed. Go's entry names are hex with `-a`/`-d`, so a
/// path never holds a space or a newline. `$1` is the cap in bytes.
const TRIM_SCRIPT: &str = r#"find . \( -path './[0-9a-f][0-9a-f]/*' -o -path './build/[0-9a-f][0-9a-f]/*' \) -type f -printf '%T@ %s %p\n' | sort -rn | awk -v max="$1" '{ t += $2; if (t > max) { print $3; gone += $2 } } END { printf "%d bytes in entries, %d bytes trimmed\n", t, gone > "/dev/stderr" }' | xargs -r rm -f --"#;
