//! `--mirror`: the names kube-cross is pulled by (the repository path kept, the short form only
//! when asked or as the fallback), and what a failed pull says about the registry.

use dockerized::image::{mirror_names, PullFailure};

#[test]
fn the_mirror_keeps_the_repository_path_then_tries_the_short_form() {
    let img = "registry.k8s.io/build-image/kube-cross:v1.15.5-1";
    assert_eq!(
        mirror_names(img, "mirror.example.com", false),
        ["mirror.example.com/build-image/kube-cross:v1.15.5-1", "mirror.example.com/kube-cross:v1.15.5-1"]
    );
    assert_eq!(mirror_names(img, "mirror.example.com/", true), ["mirror.example.com/kube-cross:v1.15.5-1"]);
    // The seed's recipe: gcr.io/google_containers/kube-cross from gcr.azk8s.cn/google_containers.
    assert_eq!(
        mirror_names("gcr.io/google_containers/kube-cross:v1.13.6-1", "gcr.azk8s.cn", false)[0],
        "gcr.azk8s.cn/google_containers/kube-cross:v1.13.6-1"
    );
    // A registry with a port, and a path under the mirror.
    assert_eq!(
        mirror_names("localhost:5000/kube-cross:v1", "127.0.0.1:5001/cache", false),
        ["127.0.0.1:5001/cache/kube-cross:v1"]
    );
    // A name without a registry is a Docker Hub path: all of it is kept.
    assert_eq!(
        mirror_names("someone/kube-cross:v1", "m.example", false),
        ["m.example/someone/kube-cross:v1", "m.example/kube-cross:v1"]
    );
}

#[test]
fn a_failed_pull_says_whether_the_registry_answered() {
    let cases = [
        ("Error response from daemon: manifest for m/kube-cross:v1 not found: manifest unknown", PullFailure::NotFound),
        ("Error: initializing source docker://m/x:v1: reading manifest v1 in m/x: name unknown", PullFailure::NotFound),
        ("Error response from daemon: unauthorized: authentication required", PullFailure::Denied),
        ("Error response from daemon: denied: requested access to the resource is denied", PullFailure::Denied),
        (
            "Error response from daemon: Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
            PullFailure::Unreachable,
        ),
        ("Get \"https://nohost.invalid/v2/\": dial tcp: lookup nohost.invalid: no such host", PullFailure::Unreachable),
        ("net/http: request canceled (Client.Timeout exceeded while awaiting headers)", PullFailure::Unreachable),
        ("write /var/lib/docker/tmp/x: no space left on device", PullFailure::Other),
    ];
    for (stderr, want) in cases {
        assert_eq!(PullFailure::of(stderr), want, "{stderr}");
    }
    let tried = ["m.example/build-image/kube-cross:v1".to_string()];
    let line = PullFailure::Unreachable.explain("m.example", &tried);
    assert!(line.contains("did not answer") && line.contains(&tried[0]), "{line}");
    let line = PullFailure::NotFound.explain("m.example", &tried);
    assert!(line.contains("answered: no") && line.contains("--mirror-short"), "{line}");
    let line = PullFailure::Denied.explain("m.example", &tried);
    assert!(line.contains("access denied") && line.contains("docker login m.example"), "{line}");
}
