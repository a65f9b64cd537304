//! The remembered tree: recorded in the kit's config directory (a private XDG_CONFIG_HOME or
//! HOME here, never the user's), found after the current directory and before GOPATH, named in
//! `--explain-tree`'s "how", and forgotten.

use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::fixture::{self, Spec};
use kube_tree::remember::{forget, recall, record_path, remember};
use kube_tree::root::discover;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &Utf8Path)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn canon(p: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(std::fs::canonicalize(p).unwrap()).unwrap()
}

#[test]
fn a_remembered_tree_comes_after_the_current_directory_and_before_gopath() {
    let remembered = fixture::scratch_tree("rem-tree", &Spec::era_b());
    let in_gopath = fixture::scratch_tree("rem-gopath", &Spec::era_c());
    let gopath = fixture::scratch_dir("rem-gp");
    std::fs::create_dir_all(gopath.join("src/k8s.io")).unwrap();
    std::os::unix::fs::symlink(&in_gopath, gopath.join("src/k8s.io/kubernetes")).unwrap();
    let config = fixture::scratch_dir("rem-config");
    let elsewhere = fixture::scratch_dir("rem-elsewhere");
    let env =
        env_of(&[("XDG_CONFIG_HOME", &config), ("HOME", Utf8Path::new("/nonexistent-home")), ("GOPATH", &gopath)]);

    // Nothing remembered yet: GOPATH's tree.
    assert_eq!(recall(&env).unwrap(), None);
    assert_eq!(discover(None, &elsewhere, &env).unwrap().root, canon(&in_gopath));

    let record = remember(&canon(&remembered), &env).unwrap();
    assert_eq!(record, config.join("k8s-build-kit/tree"));
    assert_eq!(std::fs::read_to_string(&record).unwrap(), format!("{}\n", canon(&remembered)));
    let f = discover(None, &elsewhere, &env).unwrap();
    assert_eq!(f.root, canon(&remembered));
    assert!(f.how.starts_with("remembered in ") && f.how.contains(record.as_str()), "{}", f.how);
    // The current directory still wins.
    assert_eq!(discover(None, &in_gopath, &env).unwrap().how, "current directory");

    // Forgotten: GOPATH again; forgetting twice is fine and says there was nothing.
    assert_eq!(forget(&env).unwrap(), Some(record.clone()));
    assert!(!record.exists());
    assert_eq!(forget(&env).unwrap(), None);
    assert_eq!(discover(None, &elsewhere, &env).unwrap().root, canon(&in_gopath));
}

#[test]
fn without_xdg_config_home_the_record_is_under_home_dot_config() {
    let home = fixture::scratch_dir("rem-home");
    let tree = fixture::scratch_tree("rem-home-tree", &Spec::era_b());
    // A relative XDG_CONFIG_HOME is ignored, as the XDG rules say.
    let env = env_of(&[("HOME", &home), ("XDG_CONFIG_HOME", Utf8Path::new("relative/config"))]);
    assert_eq!(record_path(&env).unwrap(), home.join(".config/k8s-build-kit/tree"));
    remember(&canon(&tree), &env).unwrap();
    assert!(home.join(".config/k8s-build-kit/tree").is_file());
    assert_eq!(discover(None, &home, &env).unwrap().root, canon(&tree));
}

#[test]
fn a_gone_or_damaged_record_is_named_and_never_stops_the_search() {
    let config = fixture::scratch_dir("rem-bad");
    let elsewhere = fixture::scratch_dir("rem-bad-elsewhere");
    let gone = fixture::scratch_tree("rem-gone", &Spec::era_b());
    let env = env_of(&[("XDG_CONFIG_HOME", &config), ("HOME", Utf8Path::new("/nonexistent-home"))]);
    remember(&canon(&gone), &env).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();
    let e = discover(None, &elsewhere, &env).unwrap_err();
    assert!(e.msg.contains("the remembered tree") && e.msg.contains("fetch-tree --forget"), "{e}");
    assert!(e.msg.contains("fetch-tree"), "{e}");

    let record = config.join("k8s-build-kit/tree");
    for (bytes, why) in [(&b"relative/path\n"[..], "absolute"), (b"/a\x1bb\n", "control character")] {
        std::fs::write(&record, bytes).unwrap();
        let e = discover(None, &elsewhere, &env).unwrap_err();
        assert!(e.msg.contains(why) && e.msg.contains(record.as_str()), "{e}");
    }
    // A FIFO in its place is refused without waiting on it.
    std::fs::remove_file(&record).unwrap();
    let made = kube_tree::proc::Proc::new("mkfifo").arg(record.as_str()).output().unwrap();
    assert_eq!(made.status.code(), Some(0), "{}", made.stderr);
    let e = recall(&env).unwrap_err();
    assert!(e.msg.contains("FIFO"), "{e}");
    // Refused to remember: a relative path or a control character.
    assert!(remember(Utf8Path::new("relative"), &env).is_err());
    assert!(remember(Utf8Path::new("/a\nb"), &env).is_err());
}
