//! The shared Go cache volume around a build (see [`crate::cache`]): made ready before the
//! build container starts, its entries checked and the cache kept under its cap before a build
//! (hourly), checked again and named when a build on it fails.

use crate::cache::{
    cache_max, failure_hint, volume_owner, CACHE_KIND, CACHE_SUBPATH, CACHE_VERIFY_VAR, CACHE_VOLUME_VAR, LABEL_KIND,
};
use crate::job::Job;
use crate::labels::{LABEL_OWNER, OWNER};
use crate::setup::Mode;
use kube_tree::{log, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// Where the one-off containers (preparing, checking and trimming) mount the volume.
const ONE_OFF_TARGET: &str = "/kit-go-cache";
/// The tree's state file that says when the cache was last checked and trimmed from it.
const TRIMMED: &str = "_output/dockerized/.kit-cache-trimmed";
/// How often a tree's builds check the entries and the cap (Go itself trims at most once a day).
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Job<'_> {
    /// Makes the shared volume ready before the build container starts: created with the kit's
    /// labels and opened to every user (a fresh volume is root's 0755; the build runs as the
    /// caller), by a one-off container of the build's image (already present). A volume of that
    /// name that is not the kit's is refused. In bind mode the mount point is made in the tree
    /// first, as the caller, so the engine does not make root-owned directories in the user's
    /// checkout.
    pub(crate) fn prepare_cache(&self) -> Result<()> {
        let (engine, setup, image) = (self.engine, self.setup, self.one_off_image());
        let Some(volume) = &setup.cache else { return Ok(()) };
        if setup.mode == Mode::Bind && !engine.dry_run {
            setup.tree.confined(CACHE_SUBPATH)?.create_dir_all()?;
        }
        match volume_owner(engine, volume)? {
            Some(o) if o == OWNER => {
                self.maintain_if_due();
                return Ok(());
            }
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
        // Only a build that runs as a user other than the container's root needs the volume
        // opened; rootless docker's bind mode runs as root (the caller outside), and its image may
        // have no chmod at all.
        let as_user = |a: &String| a.starts_with("--user=") || a.starts_with("--userns=");
        let runs_as_root = !crate::build::user_args(engine, setup.mode, &setup.user).iter().any(as_user);
        if runs_as_root {
            step.done();
            return Ok(());
        }
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
            return Err(Fail::new(format!(
                "cannot open the new Go cache volume {volume} to the build's user with `chmod` in {image} ({}); use --cache private",
                e.msg
            )));
        }
        step.done();
        Ok(())
    }

    /// After the build container: a failed build on the shared cache has the cache's entries
    /// checked (a damaged one is removed, and the user told to run again), else names the cache
    /// and how to rule it out.
    pub(crate) fn after_build(&self, status: Option<&std::process::ExitStatus>) {
        let (engine, setup) = (self.engine, self.setup);
        let Some(volume) = &setup.cache else { return };
        if status.is_none_or(|s| s.success()) || kube_tree::proc::interrupted() || engine.dry_run {
            return;
        }
        match self.maintain(Upkeep::Verify) {
            Ok(checked) if checked.damaged > 0 => log::warn(format!(
                "the shared Go cache {volume} held {} (not what its name says; now removed): run the command again",
                checked.damaged_entries()
            )),
            _ => log::warn(failure_hint(volume, &engine.program)),
        }
    }

    /// The image the one-off containers run: the build's own, already present.
    fn one_off_image(&self) -> &str {
        match self.setup.mode {
            Mode::Rsync => &self.setup.names.image,
            Mode::Bind => &self.setup.cross_image,
        }
    }

    /// Before a build, at most once an hour per tree (every build with [`CACHE_VERIFY_VAR`]=1):
    /// every entry checked, then the cache trimmed to its cap. A failure is a warning: the build
    /// itself does not need it.
    fn maintain_if_due(&self) {
        let (engine, setup) = (self.engine, self.setup);
        let always = std::env::var(CACHE_VERIFY_VAR).is_ok_and(|v| v == "1");
        let recent = std::fs::metadata(setup.tree.path(TRIMMED))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < TRIM_EVERY);
        if engine.dry_run || kube_tree::proc::interrupted() || (recent && !always) {
            return;
        }
        let volume = setup.cache.as_deref().unwrap_or_default();
        let checked = match self.maintain(Upkeep::VerifyAndTrim) {
            Ok(c) => c,
            Err(e) => return log::warn(format!("the Go cache {volume} was not checked and trimmed: {}", e.msg)),
        };
        if checked.damaged > 0 {
            log::warn(format!(
                "removed {} from the shared Go cache {volume} (not what their names say); the build makes them again",
                checked.damaged_entries()
            ));
        }
        if let Err(e) = setup.tree.write_file(TRIMMED, b"") {
            log::warn(format!("cannot note the Go cache's upkeep: {}", e.msg));
        }
    }

    /// One one-off container of the build's image over the volume: Go names every output entry
    /// (`<hash>-d`) by the SHA-256 of its content, but trusts an entry of the right size without
    /// hashing it again, so a damaged entry could reach a binary; each is hashed here and removed
    /// when it is not what its name says. Then, with [`Upkeep::VerifyAndTrim`], the least recently used
    /// entries go until the cache is under [`cache_max`] (Go refreshes an entry's mtime when it
    /// uses it). Only the build cache's entry directories are touched, never the module cache.
    fn maintain(&self, upkeep: Upkeep) -> Result<Checked> {
        let (engine, setup, image) = (self.engine, self.setup, self.one_off_image());
        let Some(volume) = &setup.cache else { return Ok(Checked { damaged: 0 }) };
        let mount = format!("{volume}:{ONE_OFF_TARGET}");
        let max = match upkeep {
            Upkeep::Verify => String::new(),
            Upkeep::VerifyAndTrim => cache_max()?.to_string(),
        };
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
            UPKEEP_SCRIPT,
            "upkeep",
            max.as_str(),
        ])?;
        log::status_v(2, format!("Go cache {volume}: {}", out.stderr.trim().replace('\n', "; ")));
        let damaged = out.stderr.lines().find_map(damaged_count).ok_or_else(|| {
            Fail::new(format!("the check of the Go cache {volume} said nothing readable: {}", out.stderr.trim()))
        })?;
        Ok(Checked { damaged })
    }
}

/// What a run of [`UPKEEP_SCRIPT`] does.
#[derive(Clone, Copy)]
enum Upkeep {
    Verify,
    VerifyAndTrim,
}

/// What the check of the entries found.
struct Checked {
    damaged: u64,
}

impl Checked {
    /// `N damaged entries` (or `1 damaged entry`), as the warnings say it.
    fn damaged_entries(&self) -> String {
        format!("{} damaged entr{}", self.damaged, if self.damaged == 1 { "y" } else { "ies" })
    }
}

/// The count in the script's `verified N entries, M damaged` line.
fn damaged_count(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("verified ")?;
    let (_, damaged) = rest.split_once(" entries, ")?;
    damaged.strip_suffix(" damaged")?.parse().ok()
}

/// `$1`: the cap in bytes, or empty for no trim. Go's entry names are hex with `-a`/`-d`, so a
/// path never holds a space or a newline. First every output entry is hashed and those not
/// named by their hash are removed; then, newest first, entries past the cap are removed.
const UPKEEP_SCRIPT: &str = r#"entries() { find . \( -path './[0-9a-f][0-9a-f]/*' -o -path './build/[0-9a-f][0-9a-f]/*' \) -type f "$@"; }
entries -name '*-d' -print0 | xargs -0 -r sha256sum | awk '{ n++; f = $2; sub(/.*\//, "", f); sub(/-d$/, "", f); if (f != $1) { print $2; bad++ } } END { printf "verified %d entries, %d damaged\n", n, bad > "/dev/stderr" }' | xargs -r rm -f --
[ -n "$1" ] || exit 0
entries -printf '%T@ %s %p\n' | sort -rn | awk -v max="$1" '{ t += $2; if (t > max) { print $3; gone += $2 } } END { printf "%d bytes in entries, %d bytes trimmed\n", t, gone > "/dev/stderr" }' | xargs -r rm -f --"#;

#[cfg(test)]
mod tests {
    use super::{damaged_count, UPKEEP_SCRIPT};

    /// The upkeep script, run here by `sh` over a directory laid out as Go's cache: an entry not
    /// named by its content's SHA-256 goes, the module cache is never touched, and the trim keeps
    /// the newest entries under the cap.
    #[test]
    fn the_upkeep_removes_damaged_entries_then_trims_the_oldest() {
        use kube_tree::proc::Proc;
        let dir = kube_tree::fixture::scratch_dir("cache-upkeep");
        let put = |rel: &str, body: &[u8], age: u64| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            filetime::set_file_mtime(&p, filetime::FileTime::from_system_time(t)).unwrap();
        };
        let sha = |b: &[u8]| {
            let f = dir.join(".hash-me");
            std::fs::write(&f, b).unwrap();
            let out = Proc::new("sha256sum").arg(&f).read().unwrap();
            std::fs::remove_file(&f).unwrap();
            out.split_whitespace().next().unwrap().to_string()
        };
        let (good, old) = (b"a compiled package".to_vec(), vec![b'x'; 4000]);
        let (hg, ho) = (sha(&good), sha(&old));
        put(&format!("build/{}/{hg}-d", &hg[..2]), &good, 10);
        put(&format!("build/{}/{ho}-d", &ho[..2]), &old, 1000);
        // The right name, other bytes of the same size: what Go would not notice.
        let bad = format!("build/{}/{hg}-d", &ho[..2]);
        put(&bad, b"a compiled pAckage", 10);
        put("mod/cache/download/x/@v/list-d", b"not an entry", 10);
        let run = |cap: &str| {
            let out = Proc::new("sh").args(["-c", UPKEEP_SCRIPT, "upkeep", cap]).dir(&dir).output().unwrap();
            assert!(out.success(), "{}", out.stderr);
            out.stderr
        };
        let said = run("");
        assert_eq!(said.lines().find_map(damaged_count), Some(1), "{said}");
        assert!(!dir.join(&bad).exists() && dir.join("mod/cache/download/x/@v/list-d").exists());
        assert!(dir.join(format!("build/{}/{ho}-d", &ho[..2])).exists(), "no cap given: nothing trimmed");
        let said = run("1000");
        assert_eq!(said.lines().find_map(damaged_count), Some(0), "{said}");
        assert!(!dir.join(format!("build/{}/{ho}-d", &ho[..2])).exists(), "the oldest goes past the cap: {said}");
        assert!(dir.join(format!("build/{}/{hg}-d", &hg[..2])).exists(), "the newest stays: {said}");
        assert_eq!(damaged_count("verified 12 entries, 3 damaged"), Some(3));
        assert_eq!(damaged_count("12 bytes in entries"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
