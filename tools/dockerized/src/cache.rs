//! The Go build cache shared by every tree, branch and worktree on one engine (issue 21).
//!
//! Go's build cache is keyed by content (inputs, flags, toolchain, environment) and is safe for
//! concurrent use, and inside a container every tree sits at the same path, so one named volume
//! can serve them all without changing an output byte. It is mounted where the tree's own scripts
//! put the cache: `_output/dockerized/go/cache` is `GOCACHE` in era A, and the parent of `GOCACHE`
//! (`build/`) and `GOMODCACHE` (`mod/`) in eras B and C, so those share the module cache (where
//! `GOTOOLCHAIN` keeps a downloaded Go) too. `--cache private` / `KUBE_BUILD_CACHE=private` keeps
//! the old per-tree cache inside the tree (bind mode) or the data container (rsync mode).

use crate::{Engine, Job, Mode, LABEL_OWNER, OWNER, REMOTE_ROOT};
use kube_tree::{log, Era, Fail};

type Result<T, E = Fail> = std::result::Result<T, E>;

/// The label naming what kind of kit object a volume is.
pub const LABEL_KIND: &str = "io.k8s-build-kit.kind";
/// [`LABEL_KIND`] of the shared Go cache.
pub const CACHE_KIND: &str = "go-cache";
/// The shared volume's name unless [`CACHE_VOLUME_VAR`] names another (a test run's own).
pub const CACHE_VOLUME: &str = "k8s-build-kit-go-cache";
pub const CACHE_VOLUME_VAR: &str = "KUBE_KIT_CACHE_VOLUME";
/// `shared` (the default) or `private`; `--cache` overrides it.
pub const CACHE_CHOICE_VAR: &str = "KUBE_BUILD_CACHE";
/// `1`: check every build cache entry against its name before each build (else hourly).
pub const CACHE_VERIFY_VAR: &str = "KUBE_KIT_CACHE_VERIFY";
/// The build cache's size cap in bytes (suffixes K, M, G accepted, binary units).
pub const CACHE_MAX_VAR: &str = "KUBE_KIT_CACHE_MAX";
/// A laptop's worth: Go trims its own cache by age only; a kubectl build's is about 1.5 GiB.
pub const DEFAULT_CACHE_MAX: u64 = 10 << 30;
/// Inside the tree: where the scripts put the Go caches of a containerized build.
pub const CACHE_SUBPATH: &str = "_output/dockerized/go/cache";
/// Where the one-off containers (preparing and trimming) mount the volume.
const ONE_OFF_TARGET: &str = "/kit-go-cache";
/// The tree's state file that says when the cache was last checked and trimmed from it.
const TRIMMED: &str = "_output/dockerized/.kit-cache-trimmed";
/// How often a tree's builds check the entries and the cap (Go itself trims at most once a day).
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// `--cache shared|private`, else [`CACHE_CHOICE_VAR`], else shared: the volume to mount, or
/// None for the per-tree cache.
pub fn choose(flag: Option<&str>) -> Result<Option<String>> {
    let (what, value) = match flag {
        Some(f) => ("--cache", f.to_string()),
        None => match std::env::var(CACHE_CHOICE_VAR).ok().filter(|v| !v.is_empty()) {
            Some(v) => (CACHE_CHOICE_VAR, v),
            None => return volume_name().map(Some),
        },
    };
    match value.as_str() {
        "shared" => volume_name().map(Some),
        "private" => Ok(None),
        v => Err(Fail::new(format!("{what} `{}`: shared or private", v.escape_debug()))),
    }
}

/// The shared volume's name: [`CACHE_VOLUME_VAR`] (checked: an engine volume name, never an
/// option or a path) or [`CACHE_VOLUME`].
pub fn volume_name() -> Result<String> {
    match std::env::var(CACHE_VOLUME_VAR).ok().filter(|v| !v.is_empty()) {
        None => Ok(CACHE_VOLUME.to_string()),
        Some(v) if valid_volume_name(&v) => Ok(v),
        Some(v) => Err(Fail::new(format!(
            "{CACHE_VOLUME_VAR} `{}`: a volume name (letters, digits, `_.-`, not starting with one of those three, at most 64)",
            v.escape_debug()
        ))),
    }
}

fn valid_volume_name(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Whether the shared volume holds the module cache too (see the module comment): eras B and C.
/// A go.work tree is era C here. Era A builds in GOPATH mode from vendor/ and has none.
pub fn shares_module_cache(era: Era) -> bool {
    era != Era::A
}

/// The build container's mount of the shared volume at the scripts' cache path (`--volume`: the
/// name is checked to hold no `:` and the target has none).
pub(crate) fn mount_args(volume: &str) -> Vec<String> {
    vec!["--volume".into(), format!("{volume}:{REMOTE_ROOT}/{CACHE_SUBPATH}")]
}

/// [`CACHE_MAX_VAR`] in bytes: `10G`, `512M`, `2048K` or a plain number.
pub fn cache_max() -> Result<u64> {
    let Some(v) = std::env::var(CACHE_MAX_VAR).ok().filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_CACHE_MAX);
    };
    parse_size(&v).ok_or_else(|| {
        Fail::new(format!("{CACHE_MAX_VAR} `{}`: a size in bytes, or with K, M or G (1024-based)", v.escape_debug()))
    })
}

pub(crate) fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, shift) = match v.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&v[..v.len() - 1], 10),
        b'M' => (&v[..v.len() - 1], 20),
        b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The volume's `owner` label: Some("") when it exists without ours, None when it does not exist.
fn volume_owner(engine: &Engine, volume: &str) -> Result<Option<String>> {
    let format = format!("{{{{index .Labels \"{LABEL_OWNER}\"}}}}");
    let answer = engine.query(&["volume", "inspect", "--format", format.as_str(), volume])?;
    Ok(answer.map(|a| if a == "<no value>" { String::new() } else { a }))
}

/// The cache's size in bytes as the engine counts it (`system df -v`), None when it has none.
pub fn cache_size(engine: &Engine, volume: &str) -> Option<u64> {
    crate::clean::volume_sizes(engine).get(volume).copied()
}

/// Whether the kit's cache volume exists on the engine (labelled as ours: another tool's volume of
/// the same name is never reported or removed).
pub fn cache_exists(engine: &Engine, volume: &str) -> Result<bool> {
    Ok(volume_owner(engine, volume)?.is_some_and(|o| o == OWNER))
}

/// Removes the kit's cache volume (make-clean --cache); false when there was none of ours.
pub fn remove_cache(engine: &Engine, volume: &str) -> Result<bool> {
    if !cache_exists(engine, volume)? {
        return Ok(false);
    }
    engine.run(&["volume", "rm", volume]).map_err(|e| {
        Fail::new(format!("cannot remove the Go cache volume {volume} (a build using it still runs?): {}", e.msg))
    })?;
    Ok(true)
}

/// What the tool says when a build on the shared cache fails: how to rule the cache out.
pub(crate) fn failure_hint(volume: &str, program: &str) -> String {
    format!(
        "the build used the shared Go cache volume {volume}; if you suspect it (Go verifies entries and rebuilds a bad one, but cannot tell every damaged file), run again with --cache private, or remove it: make-clean --cache (or {program} volume rm {volume})"
    )
}

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
            Some(o) if o == OWNER => {
                self.maintain_if_due(image);
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
        match self.maintain(self.one_off_image(), Upkeep::Verify) {
            Ok(checked) if checked.damaged > 0 => log::warn(format!(
                "the shared Go cache {volume} held {} damaged entr{} (not what its name says; now removed): run the command again",
                checked.damaged,
                if checked.damaged == 1 { "y" } else { "ies" }
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
    fn maintain_if_due(&self, image: &str) {
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
        let checked = match self.maintain(image, Upkeep::VerifyAndTrim) {
            Ok(c) => c,
            Err(e) => return log::warn(format!("the Go cache {volume} was not checked and trimmed: {}", e.msg)),
        };
        if checked.damaged > 0 {
            log::warn(format!(
                "removed {} damaged entr{} from the shared Go cache {volume} (not what their names say); the build makes them again",
                checked.damaged,
                if checked.damaged == 1 { "y" } else { "ies" }
            ));
        }
        if let Err(e) = setup.tree.write_file(TRIMMED, b"") {
            log::warn(format!("cannot note the Go cache's upkeep: {}", e.msg));
        }
    }

    /// One one-off container of `image` over the volume: Go names every output entry (`<hash>-d`)
    /// by the SHA-256 of its content, but trusts an entry of the right size without hashing it
    /// again, so a damaged entry could reach a binary; each is hashed here and removed when it is
    /// not what its name says. Then, with [`Upkeep::VerifyAndTrim`], the least recently used
    /// entries go until the cache is under [`cache_max`] (Go refreshes an entry's mtime when it
    /// uses it). Only the build cache's entry directories are touched, never the module cache.
    fn maintain(&self, image: &str, upkeep: Upkeep) -> Result<Checked> {
        let (engine, setup) = (self.engine, self.setup);
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
    use super::{
        damaged_count, mount_args, parse_size, shares_module_cache, valid_volume_name, CACHE_VOLUME, UPKEEP_SCRIPT,
    };
    use crate::{Engine, Job, Setup};
    use kube_tree::fixture::{scratch_tree, Spec};
    use kube_tree::{Era, Tree};

    #[test]
    fn every_mode_mounts_the_shared_cache_and_private_mounts_none() {
        let engine = Engine::new(Some("docker".into()), true).unwrap();
        let root = scratch_tree("cache-args", &Spec::era_c());
        let mount = format!("{CACHE_VOLUME}:/go/src/k8s.io/kubernetes/_output/dockerized/go/cache");
        for mode in ["rsync", "bind"] {
            let mut setup = Setup::new(Tree::open(&root).unwrap(), &engine, Some(mode), None).unwrap();
            setup.cache = Some(CACHE_VOLUME.into());
            let job = Job { engine: &engine, setup: &setup };
            let args = job.build_container_args(&["make".into()], &[], false);
            let at = args.iter().position(|a| *a == mount).unwrap_or_else(|| panic!("{mode}: {args:?}"));
            assert_eq!(args[at - 1], "--volume");
            // Before the image: an option of the engine's, never a word of the command.
            assert!(at < args.iter().position(|a| a == "make").unwrap());
            setup.cache = None;
            let job = Job { engine: &engine, setup: &setup };
            let args = job.build_container_args(&["make".into()], &[], false);
            assert!(!args.iter().any(|a| a.contains("dockerized/go/cache")), "{mode} private: {args:?}");
        }
        std::fs::remove_dir_all(root.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_volume_is_mounted_where_the_scripts_put_the_go_caches() {
        assert_eq!(mount_args("v1"), ["--volume", "v1:/go/src/k8s.io/kubernetes/_output/dockerized/go/cache"]);
        assert!(!shares_module_cache(Era::A));
        assert!(shares_module_cache(Era::B) && shares_module_cache(Era::C));
    }

    #[test]
    fn names_and_sizes_from_the_environment_are_checked() {
        for ok in ["k8s-build-kit-go-cache", "kit.test_1", "a"] {
            assert!(valid_volume_name(ok), "{ok}");
        }
        for bad in ["", "-rm", ".x", "a/b", "a b", "a,b", "a=b", &"x".repeat(65)] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2048"), Some(2048));
        for bad in ["", "G", "1.5G", "-1", "10T", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

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
