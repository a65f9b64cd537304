//! Era detection and root discovery on generated trees of each era.
use kube_tree::fixture::{self, Spec};
use kube_tree::{Era, Tree, VendorLayout};

#[test]
fn eras_are_read_from_the_tree() {
    for (name, spec, era, layout) in [
        ("a", Spec::era_a(), Era::A, VendorLayout::Symlinks),
        ("b", Spec::era_b(), Era::B, VendorLayout::Symlinks),
        ("bw", Spec::era_b_workspace(), Era::B, VendorLayout::Workspace),
        ("c", Spec::era_c(), Era::C, VendorLayout::Workspace),
    ] {
        let root = fixture::scratch_tree(&format!("era-{name}"), &spec);
        let t = Tree::open(&root).unwrap();
        assert_eq!((t.era, t.layout), (era, layout), "{name}: {:?}", t.evidence);
        assert!(!t.evidence.is_empty());
    }
}

use camino::Utf8PathBuf;
use kube_tree::root::{discover, Found};

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

#[test]
fn root_discovery_follows_the_documented_order() {
    let tree = fixture::scratch_tree("roots", &Spec::era_b());
    let canon = Utf8PathBuf::from_path_buf(std::fs::canonicalize(&tree).unwrap()).unwrap();
    let elsewhere = fixture::scratch_dir("roots-elsewhere");
    let none: &[(&str, &str)] = &[];

    // Two valid trees: --kube-root wins over KUBE_ROOT, and KUBE_ROOT over the current
    // directory (itself a tree) and GOPATH.
    let other = fixture::scratch_tree("roots-other", &Spec::era_c());
    let other_canon = Utf8PathBuf::from_path_buf(std::fs::canonicalize(&other).unwrap()).unwrap();
    let kube_root: &'static str = Box::leak(other.to_string().into_boxed_str());
    let with_kube_root: &'static [(&'static str, &'static str)] =
        Box::leak(vec![("KUBE_ROOT", kube_root)].into_boxed_slice());
    let f: Found = discover(Some(&tree), &elsewhere, &env_of(with_kube_root)).unwrap();
    assert_eq!((f.root.clone(), f.how.as_str()), (canon.clone(), "--kube-root"));
    let f = discover(None, &tree, &env_of(with_kube_root)).unwrap();
    assert_eq!((f.root.clone(), f.how.as_str()), (other_canon.clone(), "KUBE_ROOT"));
    // An explicit root that is not a tree is an error, never a fallback.
    let e = discover(Some(&elsewhere), &tree, &env_of(none)).unwrap_err();
    assert!(e.msg.contains("is not a Kubernetes tree"), "{e}");
    // From a subdirectory: the parents are searched.
    let f = discover(None, &tree.join("staging/src/k8s.io/api"), &env_of(none)).unwrap();
    assert_eq!(f.root, canon);
    assert!(f.how.starts_with("parent of"), "{}", f.how);

    // GOPATH: the second entry's src/k8s.io/kubernetes.
    let gp = fixture::scratch_dir("roots-gopath");
    std::fs::create_dir_all(gp.join("src/k8s.io")).unwrap();
    std::os::unix::fs::symlink(&tree, gp.join("src/k8s.io/kubernetes")).unwrap();
    let gopath: &'static str = Box::leak(format!("/nonexistent:{gp}").into_boxed_str());
    let pairs: &'static [(&'static str, &'static str)] =
        Box::leak(vec![("GOPATH", gopath), ("HOME", "/nonexistent-home")].into_boxed_slice());
    let f = discover(None, &elsewhere, &env_of(pairs)).unwrap();
    assert_eq!(f.root, canon);
    assert!(f.how.starts_with("GOPATH"), "{}", f.how);
    // The current directory comes before GOPATH.
    let f = discover(None, &other, &env_of(pairs)).unwrap();
    assert_eq!((f.root.clone(), f.how.as_str()), (other_canon.clone(), "current directory"));

    // No GOPATH: ~/go/src/k8s.io/kubernetes.
    let home = fixture::scratch_dir("roots-home");
    std::fs::create_dir_all(home.join("go/src/k8s.io")).unwrap();
    std::os::unix::fs::symlink(&other, home.join("go/src/k8s.io/kubernetes")).unwrap();
    let home_s: &'static str = Box::leak(home.to_string().into_boxed_str());
    let only_home: &'static [(&'static str, &'static str)] = Box::leak(vec![("HOME", home_s)].into_boxed_slice());
    let f = discover(None, &elsewhere, &env_of(only_home)).unwrap();
    assert_eq!(f.root, other_canon);
    assert!(f.how.contains("go/src/k8s.io/kubernetes"), "{}", f.how);

    // Nothing fits: the error names what was tried.
    let e = discover(None, &elsewhere, &env_of(&[("HOME", "/nonexistent-home")])).unwrap_err();
    assert!(e.msg.contains("KUBE_ROOT (unset)") && e.msg.contains("/nonexistent-home/go/src/k8s.io/kubernetes"), "{e}");
}

#[test]
fn era_a_tree_without_go_mod_is_still_recognised() {
    let tree = fixture::scratch_tree("roots-nogomod", &Spec::era_a());
    std::fs::remove_file(tree.join("go.mod")).unwrap();
    let why = kube_tree::root::looks_like_kube(&tree).unwrap();
    assert!(why.contains("era-A markers"), "{why}");
    let t = Tree::open(&tree).unwrap();
    assert_eq!(t.era, Era::A);
}
