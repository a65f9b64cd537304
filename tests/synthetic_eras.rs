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
