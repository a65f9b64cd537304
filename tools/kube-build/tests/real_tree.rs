//! kube-build on the real Debian v1.20.2 tree (see testkit): what `make WHAT=cmd/kubectl` makes,
//! codegen only when its inputs change, --debug, and a darwin kubectl with the tree's own Go.

use camino::Utf8Path;
use kube_tree::proc::{Captured, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_kube-build");

/// `kubectl version --client` fields but the build date.
fn version_fields(kubectl: &Utf8Path) -> String {
    let out = Proc::new(kubectl).args(["version", "--client"]).read().unwrap();
    let i = out.find("BuildDate:").expect("BuildDate field");
    let j = out[i..].find(", ").unwrap() + i;
    format!("{}{}", &out[..i], &out[j + 2..]).trim().to_string()
}

#[test]
#[ignore = "full tier: needs the real v1.20.2 tree, its Go 1.15 (network on first run) and builds of kubectl"]
fn local_build_of_kubectl_like_make() {
    let test = "local_build_of_kubectl_like_make";
    let tree = match testkit::real_tree() {
        Ok(t) => t,
        Err(e) => return testkit::skip_if_missing(test, &e),
    };
    for t in ["go", "make", "rsync"] {
        if !testkit::require(test, t) {
            return;
        }
    }
    // A full copy: the tree's own generators write into files.
    let copy = testkit::scratch("real-build").join("kubernetes");
    testkit::full_copy(&tree, &copy).unwrap();
    // --go host: make builds with the go on PATH, so the comparison does too.
    let build = |args: &[&str]| -> Captured {
        let p = Proc::new(BIN)
            .arg("--kube-root")
            .arg(&copy)
            .args(["--go", "host"])
            .args(args)
            .env_remove("GOFLAGS")
            .env_remove("KUBE_GIT_VERSION_FILE");
        let out = p.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        out
    };

    // The tree's own make first: its kubectl's version fields are what ours must carry.
    let made = Proc::new("make")
        .arg("WHAT=cmd/kubectl")
        .dir(&copy)
        .env_remove("GOFLAGS")
        .output_with_progress("make WHAT=cmd/kubectl", std::time::Duration::from_secs(30))
        .unwrap();
    assert!(made.success(), "make: {}", made.first_lines(5));
    let makes = version_fields(&copy.join("_output/local/bin/linux/amd64/kubectl"));
    std::fs::remove_dir_all(copy.join("_output/local/bin")).unwrap();

    let out = build(&["WHAT=cmd/kubectl", "--json"]);
    assert!(
        out.stdout.contains(r#""codegen":"ran""#) && out.stdout.contains(r#""up_to_date":false"#),
        "{}",
        out.stdout
    );
    let kubectl = copy.join("_output/bin/kubectl");
    assert_eq!(version_fields(&kubectl), makes, "the version fields of make's kubectl, but the build date");
    let go = Proc::new("go").arg("version").read().unwrap();
    let go = go.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(version_fields(&kubectl), format!(
        "Client Version: version.Info{{Major:\"1\", Minor:\"20\", GitVersion:\"v1.20.2\", GitCommit:\"faecb196815e248d3ecfb03c680a4507229c2a56\", GitTreeState:\"archive\", GoVersion:\"{go}\", Compiler:\"gc\", Platform:\"linux/amd64\"}}"
    ), "the fields make WHAT=cmd/kubectl stamps for this tree");
    let info = Proc::new("go").args(["version", "-m"]).arg(&kubectl).read().unwrap();
    assert!(
        info.contains("-ldflags=\"-s -w -buildid= -X") && info.contains("CGO_ENABLED=0"),
        "stripped and static like make's: {info}"
    );

    // Nothing changed: no codegen, no link.
    let out = build(&["WHAT=cmd/kubectl", "--json"]);
    assert!(
        out.stdout.contains(r#""codegen":"up-to-date""#) && out.stdout.contains(r#""up_to_date":true"#),
        "{}",
        out.stdout
    );

    // The edit loop: one line appended to a kubectl source file. kubectl is rebuilt; the
    // generators are not run, as nothing they read changed.
    let append = |rel: &str, line: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(copy.join(rel)).unwrap();
        writeln!(f, "{line}").unwrap();
    };
    append("staging/src/k8s.io/kubectl/pkg/cmd/version/version.go", "// an edit of the loop");
    let out = build(&["WHAT=cmd/kubectl", "--json"]);
    assert!(
        out.stdout.contains(r#""codegen":"up-to-date""#) && out.stdout.contains(r#""up_to_date":false"#),
        "{}",
        out.stdout
    );
    assert_eq!(version_fields(&kubectl), makes, "the rebuilt kubectl still carries make's fields");

    // An API types file edited: the generator step runs again, and leaves the generated files
    // as the tree's own make leaves them (make run afterwards changes none of them).
    append("staging/src/k8s.io/api/core/v1/types.go", "// an API edit");
    let out = build(&["WHAT=cmd/kubectl", "--json"]);
    assert!(out.stdout.contains(r#""codegen":"ran""#), "{}", out.stdout);
    // Every generated file (the tree is a source package: no git to ask).
    let generated = || -> Vec<(String, Vec<u8>)> {
        let found = Proc::new("find")
            .arg(".")
            .args(["(", "-name", "zz_generated*", "-o", "-name", "bindata.go", ")", "-not", "-path", "./_output/*"])
            .dir(&copy)
            .read()
            .unwrap();
        let mut v: Vec<(String, Vec<u8>)> =
            found.lines().map(|n| (n.to_string(), std::fs::read(copy.join(n)).unwrap_or_default())).collect();
        v.sort();
        v
    };
    let ours = generated();
    assert!(ours.len() > 100, "the generated files are found: {}", ours.len());
    let made = Proc::new("make").arg("generated_files").dir(&copy).env_remove("GOFLAGS").output().unwrap();
    assert!(made.success(), "{}", made.first_lines(5));
    assert!(generated() == ours, "make generated_files changed files kube-build had generated");

    // --debug on a small command: unstripped, optimisations off.
    build(&["WHAT=cmd/linkcheck", "--debug"]);
    let lc = copy.join("_output/local/bin/linux/amd64/linkcheck");
    let info = Proc::new("go").args(["version", "-m"]).arg(&lc).read().unwrap();
    assert!(info.contains("all=-N -l") && !info.contains("-s -w"), "{info}");
    assert!(Proc::new("go").args(["tool", "nm"]).arg(&lc).read().unwrap().contains(" T main.main"));

    // A Mach-O binary for darwin/amd64 and a linux one, with the Go this tree was made for (its
    // kube-cross tag says 1.15.5), which nobody installed: the PATH has Debian's Go only, and
    // --go auto gets the tree's line from a mirror (a real HTTP server serving golang-1.15 in the
    // official layout). linkcheck, not kubectl: a new Go compiles everything again, per platform,
    // and a small command proves the same (the Go downloaded, both platforms built by it).
    let archive = match testkit::gomirror::go115_archive() {
        Ok(a) => a,
        Err(e) => return testkit::skip_if_missing(&format!("{test} (darwin part)"), &e),
    };
    let mirror = testkit::gomirror::GoMirror::start(std::slice::from_ref(&archive));
    let cache = testkit::scratch("real-build-go-cache");
    let out = Proc::new(BIN)
        .arg("--kube-root")
        .arg(&copy)
        .args(["WHAT=cmd/linkcheck", "KUBE_BUILD_PLATFORMS=darwin/amd64 linux/amd64"])
        .env_remove("GOFLAGS")
        .env_remove("KUBE_GIT_VERSION_FILE")
        .env_remove("GOTOOLCHAIN")
        .env_remove("FORCE_HOST_GO")
        .env_remove("GO_VERSION")
        .env_remove("GOROOT")
        .env("KUBE_GO_MIRROR", &mirror.url)
        .env("KUBE_KIT_CACHE", &cache)
        .output_with_progress(
            "kube-build linkcheck for darwin/amd64 and linux/amd64 with the tree's Go",
            std::time::Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("go1.15.15 at"), "the tree's Go line, downloaded: {}", out.stderr);
    let mach = std::fs::read(copy.join("_output/local/bin/darwin/amd64/linkcheck")).unwrap();
    assert_eq!(&mach[..4], &[0xcf, 0xfa, 0xed, 0xfe], "Mach-O 64-bit");
    for p in ["darwin/amd64", "linux/amd64"] {
        let bin = copy.join("_output/local/bin").join(p).join("linkcheck");
        let info = Proc::new("go").args(["version"]).arg(&bin).read().unwrap();
        assert!(info.trim_end().ends_with(": go1.15.15"), "{p} built by the tree's Go: {info}");
    }
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(copy.parent().unwrap());
}
