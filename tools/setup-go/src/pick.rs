//! Which Go a run uses, and getting it: the one decision every tool that runs `go` shares.

use crate::install::Cache;
use crate::local::{self, Installed};
use crate::mirror::{self, Mirror};
use crate::want::{self, Wanted};
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::gover;
use kube_tree::{log, Fail, Tree};

/// `--go auto|host|PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The tree's Go when it is installed or can be downloaded, else the PATH Go with a warning.
    Auto,
    /// The `go` on PATH, as it is.
    Host,
    /// A GOROOT, or a `go` binary in one.
    Path(GivenGo),
}

/// `--go PATH`: resolved against the current directory when it is parsed, so that the tree
/// (where the tools run go) never gives a relative path its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenGo {
    /// Absolute.
    pub path: Utf8PathBuf,
    /// As the user wrote it.
    pub given: String,
}

impl GivenGo {
    fn relative(&self) -> bool {
        !Utf8Path::new(&self.given).is_absolute()
    }
}

impl Choice {
    pub fn parse(s: &str) -> Result<Choice, Fail> {
        match s {
            "auto" => Ok(Choice::Auto),
            "host" => Ok(Choice::Host),
            p if !p.is_empty() && !p.starts_with('-') && !p.chars().any(char::is_control) => {
                let path = if Utf8Path::new(p).is_absolute() {
                    Utf8PathBuf::from(p)
                } else {
                    let cwd = std::env::current_dir()
                        .ok()
                        .and_then(|c| Utf8PathBuf::from_path_buf(c).ok())
                        .ok_or_else(|| Fail::new(format!("--go {p}: the current directory is unreadable")))?;
                    cwd.join(p)
                };
                Ok(Choice::Path(GivenGo { path, given: p.into() }))
            }
            p => Err(Fail::new(format!("--go: `{}` is not auto, host or the path of a Go", p.escape_debug()))),
        }
    }
}

/// A relative `--go` that lands inside the tree is refused: a program planted in the tree must
/// not run because a short name happened to match; the absolute path says the user means it.
fn given_in_tree(tree: &Tree, g: &GivenGo) -> Result<(), Fail> {
    let real = |p: &Utf8Path| std::fs::canonicalize(p).ok();
    let (Some(at), Some(root)) = (real(&g.path), real(&tree.root)) else { return Ok(()) };
    if g.relative() && at.starts_with(&root) {
        return Err(Fail::new(format!(
            "--go {}: that is {}, inside the tree; give its absolute path to run a Go from the tree",
            g.given, g.path
        )));
    }
    Ok(())
}

/// The Go a run will use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Set when it is not the `go` on PATH.
    pub installed: Option<Installed>,
    pub why: String,
}

/// Where downloads come from and go, how long they may take, and how strict the version match is.
#[derive(Debug, Clone)]
pub struct Options {
    pub mirror: String,
    pub exact: bool,
    pub cache: Utf8PathBuf,
    pub limits: mirror::Limits,
}

impl Options {
    /// `--mirror`, else `KUBE_GO_MIRROR`, else the official site; the cache from [`cache_dir`]
    /// (refused when it holds control characters: its paths reach shells and logs).
    pub fn from_env(
        mirror: Option<String>,
        exact: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Options, Fail> {
        let mirror =
            mirror.or_else(|| env("KUBE_GO_MIRROR").filter(|m| !m.is_empty())).unwrap_or(mirror::OFFICIAL.into());
        let cache = cache_dir(env);
        if cache.as_str().chars().any(char::is_control) {
            return Err(Fail::new(format!(
                "the kit's cache `{}` (KUBE_KIT_CACHE, XDG_CACHE_HOME or HOME) holds control characters",
                cache.as_str().escape_debug()
            )));
        }
        Ok(Options { mirror, exact, cache, limits: mirror::Limits::from_env(env)? })
    }

    pub fn site(&self) -> Result<Mirror, Fail> {
        Mirror::with_limits(&self.mirror, self.limits)
    }
}

/// `$KUBE_KIT_CACHE`, else `$XDG_CACHE_HOME/k8s-build-kit`, else `~/.cache/k8s-build-kit`.
pub fn cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Utf8PathBuf {
    if let Some(c) = env("KUBE_KIT_CACHE").filter(|c| !c.is_empty()) {
        return c.into();
    }
    let base = env("XDG_CACHE_HOME")
        .filter(|c| !c.is_empty())
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|| Utf8PathBuf::from(env("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache"));
    base.join("k8s-build-kit")
}

/// A Go given by path: a GOROOT or its `bin/go`.
pub fn at_path(p: &Utf8Path) -> Result<Installed, Fail> {
    let goroot = if p.is_file() { p.parent().and_then(Utf8Path::parent).unwrap_or(p).to_owned() } else { p.to_owned() };
    let version = local::version_at(&goroot)
        .ok_or_else(|| Fail::new(format!("--go {p}: no Go there (expected a GOROOT with bin/go and VERSION)")))?;
    Ok(Installed { version, goroot, place: "--go" })
}

/// The installation of `w`: installed exactly, an earlier same-minor choice, or downloaded
/// (exact patch first, else, unless `exact`, the newest patch of its minor line).
pub fn obtain(w: &Wanted, o: &Options, env: &dyn Fn(&str) -> Option<String>) -> Result<(Installed, String), Fail> {
    let v = &w.version;
    // A bad mirror is refused before anything else.
    let m = o.site()?;
    let cache = Cache::open(&o.cache);
    let all = local::all(cache.dir(), env);
    if let Some(i) = local::best(&all, v, true) {
        return Ok((i.clone(), format!("go{} ({}) is installed at {}", v.text, w.from, i.goroot)));
    }
    if !o.exact {
        if let Some(i) = cache.fallback_of(v) {
            let why = format!(
                "go{} ({}) is not published; go{} of the same line was chosen before",
                v.text, w.from, i.version.text
            );
            return Ok((i, why));
        }
    }
    let (os, arch) = mirror::host_platform();
    let asked = m.listing(os, arch).and_then(|listing| {
        let exact = match &listing {
            Some(l) => l.iter().find(|a| a.version == *v).cloned(),
            None => m.by_checksum_file(v, os, arch)?,
        };
        Ok((listing, exact))
    });
    let (listing, exact) = match (asked, local::best(&all, v, false).filter(|_| !o.exact)) {
        (Ok(found), _) => found,
        // The site cannot be asked (offline, behind a firewall): a Go of the same line that is
        // here already is better than none.
        (Err(e), Some(i)) if e.code != 130 => {
            log::warn(format!("{}; using go{} of the same line, at {}", e.msg, i.version.text, i.goroot));
            let why = format!("go{} ({}) could not be asked for; go{} is installed", v.text, w.from, i.version.text);
            return Ok((i.clone(), why));
        }
        (Err(e), _) => return Err(e),
    };
    if let Some(a) = exact {
        let i = cache.install(&m, &a)?;
        return Ok((i, format!("go{} ({}) downloaded from {}", v.text, w.from, m.base())));
    }
    let lacks = format!("{} has no go{} for {os}/{arch}", m.base(), v.text);
    if o.exact {
        return Err(Fail::new(format!("{lacks} (--exact)")));
    }
    let same_minor = |i: &gover::GoVersion| i.minor == v.minor && i.pre.is_none();
    if let Some(i) = local::best(&all, v, false) {
        log::warn(format!("{lacks}; using go{} of the same line, installed at {}", i.version.text, i.goroot));
        return Ok((i.clone(), format!("{lacks}; go{} is installed", i.version.text)));
    }
    let newest = listing.as_ref().and_then(|l| l.iter().find(|a| same_minor(&a.version)).cloned());
    let Some(a) = newest else {
        let hint = if listing.is_none() { " (and it serves no release listing to find another patch in)" } else { "" };
        return Err(Fail::new(format!("{lacks}, nor any other go{}.x{hint}", v.minor_line())));
    };
    log::warn(format!(
        "{lacks}; installing go{}, the newest patch of go{} (--exact refuses this)",
        a.version.text,
        v.minor_line()
    ));
    let i = cache.install(&m, &a)?;
    cache.remember_fallback(v, &i.version)?;
    Ok((i, format!("{lacks}; go{} downloaded instead", a.version.text)))
}

/// `e` (the wanted Go could not be had), told so that it names its way out: what is wanted and
/// why, the Go found on this machine and why it was not used, and the ways on. One line.
pub fn ways_on(e: Fail, w: &Wanted, o: &Options, env: &dyn Fn(&str) -> Option<String>) -> Fail {
    if e.code == 130 || !(e.msg.contains("cannot reach") || e.msg.contains("no complete answer")) {
        return e;
    }
    let v = &w.version;
    let found = local::all(&o.cache.join("go"), env);
    let seen = if found.is_empty() {
        "no Go found on this machine".to_string()
    } else {
        let list: Vec<String> = found.iter().map(|i| format!("go{} ({})", i.version.text, i.place)).collect();
        let why = if o.exact {
            "not this exact version (--exact)".to_string()
        } else {
            format!("none of the go{} line", v.minor_line())
        };
        format!("found {}, {why}", list.join(", "))
    };
    let (os, arch) = mirror::host_platform();
    let name = mirror::archive_name(v, os, arch);
    Fail::new(format!(
        "{}; wanted go{} ({}); {seen}. Ways on: a reachable site with --mirror URL or KUBE_GO_MIRROR; FORCE_HOST_GO=y to use the go on PATH; or a Go you have: unpack {name} so that ~/sdk/go{} is its GOROOT, or point GOROOT at one",
        e.msg, v.text, w.from, v.text
    ))
}

/// The decision [`pick`] and [`preview`] share, before anything is downloaded.
enum Decision {
    /// The go on PATH, and why.
    Host(String),
    /// `--go PATH`.
    Given(Installed, String),
    /// The tree's Go, to be had (installed or downloaded); PATH's go is of another line.
    Tree { want: Wanted, host: Installed },
}

fn decide(tree: &Tree, choice: &Choice, env: &dyn Fn(&str) -> Option<String>) -> Result<Decision, Fail> {
    match choice {
        Choice::Host => return Ok(Decision::Host("--go host".into())),
        Choice::Path(g) => {
            given_in_tree(tree, g)?;
            return Ok(Decision::Given(at_path(&g.path)?, format!("--go {}", g.given)));
        }
        Choice::Auto => {}
    }
    if let Some(why) = want::host_forced(env) {
        return Ok(Decision::Host(format!("{why} asks for the go on PATH")));
    }
    let Some(w) = want::resolve(Some(tree), None, env)? else {
        return Ok(Decision::Host("the tree names no Go version".into()));
    };
    let Some(h) = local::host() else {
        // A wrapper or a build of its own: the user's PATH is trusted as it is.
        return Ok(Decision::Host(format!(
            "the tree wants go{}; the go on PATH has no readable GOROOT/VERSION, so it is used",
            w.version.text
        )));
    };
    if h.version.minor == w.version.minor {
        return Ok(Decision::Host(format!(
            "the go on PATH (go{}) is of the line the tree wants (go{}, {})",
            h.version.text, w.version.text, w.from
        )));
    }
    Ok(Decision::Tree { want: w, host: h })
}

/// The Go a tool runs for `tree` under `choice` (see [`Choice`]); downloads when it must.
pub fn pick(tree: &Tree, choice: &Choice, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, Fail> {
    let (w, h) = match decide(tree, choice, env)? {
        Decision::Host(why) => return Ok(Resolved { installed: None, why }),
        Decision::Given(i, why) => return Ok(Resolved { installed: Some(i), why }),
        Decision::Tree { want, host } => (want, host),
    };
    let o = Options::from_env(None, false, env)?;
    match obtain(&w, &o, env) {
        Ok((i, why)) => Ok(Resolved { installed: Some(i), why }),
        Err(e) if e.code == 130 => Err(e),
        Err(e) => {
            let key = format!("{}\0{}\0{}\0{}", tree.root, w.version.text, h.version.text, h.goroot);
            if crate::notice::once(&o.cache, "go-fallback", &key, log::level() >= 2) {
                log::warn(format!(
                    "the tree wants go{} ({}) but it cannot be had ({}); using go{} from PATH, which may not build this tree (e.g. other platforms with an old vendored x/sys). FORCE_HOST_GO=y uses it without asking; KUBE_GO_MIRROR or setup-go gets the tree's Go (said once for this tree and Go; -v repeats it)",
                    w.version.text, w.from, e.msg, h.version.text
                ));
            }
            Ok(Resolved { installed: None, why: format!("go{} could not be had; the go on PATH", w.version.text) })
        }
    }
}

/// What [`pick`] would choose, without downloading anything (for doctor): `(true, text)` when
/// the choice is settled, `(false, text)` when a build would first download the tree's Go.
pub fn preview(tree: &Tree, choice: &Choice, env: &dyn Fn(&str) -> Option<String>) -> Result<(bool, String), Fail> {
    let w = match decide(tree, choice, env)? {
        Decision::Host(why) => return Ok((true, format!("the go on PATH: {why}"))),
        Decision::Given(i, _) => {
            // doctor's word that a given Go is fine rests on running it, not on its VERSION file.
            crate::verify::reports(&i.goroot, &i.version)
                .map_err(|e| Fail::new(format!("--go {}: {}", i.goroot, e.replace("go/bin/go", "bin/go"))))?;
            return Ok((true, format!("go{} at {} (--go)", i.version.text, i.goroot)));
        }
        Decision::Tree { want, .. } => want,
    };
    let all = local::all(&cache_dir(env).join("go"), env);
    if let Some(i) = local::best(&all, &w.version, false) {
        return Ok((
            true,
            format!("go{} at {} (the tree wants go{}, {})", i.version.text, i.goroot, w.version.text, w.from),
        ));
    }
    let o = Options::from_env(None, false, env)?;
    Ok((
        false,
        format!(
            "the tree wants go{} ({}), not installed: a build downloads it from {}",
            w.version.text, w.from, o.mirror
        ),
    ))
}

/// [`pick`]s the Go for `tree` and points `genv` at it (unless it is PATH's); logs which and why.
pub fn apply(
    tree: &Tree,
    choice: &Choice,
    genv: &mut kube_tree::goenv::GoEnv,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, Fail> {
    let chosen = pick(tree, choice, env)?;
    use_chosen(&chosen, genv, env);
    Ok(chosen)
}

/// Points `genv` at what [`pick`] chose (unless it is PATH's); logs which and why.
pub fn use_chosen(chosen: &Resolved, genv: &mut kube_tree::goenv::GoEnv, env: &dyn Fn(&str) -> Option<String>) {
    match &chosen.installed {
        Some(i) => {
            log::status(format!("go{} at {} ({})", i.version.text, i.goroot, chosen.why));
            genv.use_goroot(&i.goroot, env("PATH").as_deref());
        }
        None => log::status_v(2, format!("the go on PATH: {}", chosen.why)),
    }
}

/// `--go`, declared once for every tool that takes it (kube-build, doctor, check-vendor,
/// setup-gopath).
pub const GO_FLAG: kube_tree::cli::Flag = kube_tree::cli::Flag::value(
    "--go",
    "auto|host|PATH",
    "which Go: auto (default) is the tree's Go when the go on PATH is of another line, found or \
     downloaded as setup-go does; host is the go on PATH (also FORCE_HOST_GO=y)",
);

/// `--go` as every tool reads it (default auto); a path must hold a Go (else exit 2 at once).
pub fn choice_flag(ctx: &mut kube_tree::cli::Ctx) -> Result<Choice, Fail> {
    let c = Choice::parse(ctx.opt_string(GO_FLAG.name)?.as_deref().unwrap_or("auto"))?;
    if let Choice::Path(g) = &c {
        // The tree the tool will work on, when there is one: refused here, before any work, in
        // every tool alike (doctor would otherwise only report it).
        if let Ok(tree) = ctx.tree() {
            given_in_tree(&tree, g)?;
        }
        at_path(&g.path)?;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::{pick, Choice, GivenGo};
    use kube_tree::fixture::{self, Spec};
    use kube_tree::Tree;

    /// A GOROOT-looking directory (its bin/go is never run here).
    fn fake_goroot(at: &camino::Utf8Path) {
        std::fs::create_dir_all(at.join("bin")).unwrap();
        std::fs::write(at.join("bin/go"), "#!/bin/sh\necho PLANTED\n").unwrap();
        std::fs::write(at.join("VERSION"), "go1.15.5\n").unwrap();
    }

    #[test]
    fn a_relative_go_is_taken_from_the_current_directory() {
        let cwd = camino::Utf8PathBuf::from_path_buf(std::env::current_dir().unwrap()).unwrap();
        let Choice::Path(g) = Choice::parse("mygo").unwrap() else { panic!("a path") };
        assert_eq!(g, GivenGo { path: cwd.join("mygo"), given: "mygo".into() });
        let Choice::Path(g) = Choice::parse("/opt/go").unwrap() else { panic!("a path") };
        assert_eq!(g.path, "/opt/go");
        assert!(Choice::parse("my\ngo").is_err());
        assert!(Choice::parse("-x").is_err());
    }

    #[test]
    fn a_go_inside_the_tree_runs_only_when_named_absolutely() {
        let root = fixture::scratch_tree("sg-pick-in-tree", &Spec::era_b());
        fake_goroot(&root.join("mygo"));
        let tree = Tree::open(&root).unwrap();
        let env = |_: &str| None;
        let relative = Choice::Path(GivenGo { path: root.join("mygo"), given: "mygo".into() });
        let e = pick(&tree, &relative, &env).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.msg.contains("inside the tree") && e.msg.contains("absolute"), "{}", e.msg);
        let through_dots = Choice::Path(GivenGo { path: root.join("hack/../mygo"), given: "../x/../mygo".into() });
        assert!(pick(&tree, &through_dots, &env).is_err());
        let absolute = Choice::Path(GivenGo { path: root.join("mygo"), given: root.join("mygo").into_string() });
        let got = pick(&tree, &absolute, &env).unwrap().installed.unwrap();
        assert_eq!((got.goroot, got.version.text.as_str()), (root.join("mygo"), "1.15.5"));
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }
}
