//! kube-build's make-style argument reader: no panic on any words, and what it accepts keeps
//! every target and platform it was given.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn parse_request_never_panics(words in prop::collection::vec(prop_oneof![any::<String>(), "(WHAT|KUBE_BUILD_PLATFORMS|GOFLAGS|GOGCFLAGS|GOLDFLAGS|DBG|X)=[ -~]{0,30}"], 0..6),
                                  what in prop::collection::vec(any::<String>(), 0..3),
                                  env_what in proptest::option::of(any::<String>())) {
        let env = move |k: &str| if k == "WHAT" { env_what.clone() } else { None };
        let _ = kube_build::parse_request(&words, kube_build::RequestFlags { what, ..Default::default() }, &env);
    }

    #[test]
    fn targets_and_platforms_are_kept(targets in prop::collection::vec("cmd/[a-z-]{1,12}", 1..4), platforms in prop::collection::vec("(linux|darwin|windows)/(amd64|arm64)", 0..3)) {
        let words = vec![format!("WHAT={}", targets.join(" ")), format!("KUBE_BUILD_PLATFORMS={}", platforms.join(" "))];
        let r = kube_build::parse_request(&words, kube_build::RequestFlags::default(), &|_| None).map_err(|e| TestCaseError::fail(e.msg))?;
        for t in &targets {
            prop_assert!(r.targets.contains(t));
        }
        for p in &platforms {
            prop_assert!(r.platforms.contains(p));
        }
    }
}
