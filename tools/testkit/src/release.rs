//! What a test of a whole release needs here: a tree the engines can `make cross` in minutes,
//! and the base images the tree's packaging builds its server images from (no registry is
//! reachable, so stand-ins under test-only names, with `KUBE_BUILD_PULL_LATEST_IMAGES=n`).

use crate::Cli;
use camino::{Utf8Path, Utf8PathBuf};
use kube_tree::proc::Proc;
use kube_tree::Fail;

/// A copy of the real tree at `dst` with every build target's own package (each path of
/// hack/lib/golang.sh's target lists whose directory holds a main package, or a `.test`
/// target's package) cut down to a few lines. What a release run does with them stays the
/// tree's own: the Makefile, build/ and hack/ scripts, the code generators over the whole
/// tree, vendor/ and staging/, the platform lists and the packaging. Returns the targets cut.
pub fn cut_down_tree(real: &Utf8Path, dst: &Utf8Path) -> Result<Vec<String>, Fail> {
    crate::full_copy(real, dst)?;
    let golang = fs_err::read_to_string(dst.join("hack/lib/golang.sh"))?;
    let mut cut = Vec::new();
    for word in golang.split_whitespace() {
        let word = word.trim_matches(|c| c == '(' || c == ')' || c == '"');
        if !["cmd/", "test/", "vendor/", "cluster/"].iter().any(|p| word.starts_with(p))
            || cut.iter().any(|c| c == word)
        {
            continue;
        }
        let (dir, test) = match word.strip_suffix(".test") {
            Some(t) => (Utf8Path::new(t).parent().unwrap_or(Utf8Path::new(t)).to_owned(), true),
            None => (Utf8PathBuf::from(word), false),
        };
        let files = go_files(&dst.join(&dir));
        let package = files.iter().find_map(|f| package_of(f));
        let Some(package) = package else { continue };
        if !test && package != "main" {
            continue;
        }
        for f in &files {
            fs_err::remove_file(f)?;
        }
        let name = dir.file_name().unwrap_or("target");
        if test {
            let p = package.trim_end_matches("_test");
            fs_err::write(dst.join(&dir).join("doc.go"), format!("package {p}\n"))?;
            fs_err::write(
                dst.join(&dir).join("cut_test.go"),
                format!("package {p}\n\nimport \"testing\"\n\nfunc TestCut(t *testing.T) {{ t.Log(\"{name}\") }}\n"),
            )?;
        } else {
            fs_err::write(
                dst.join(&dir).join("main.go"),
                format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println(\"{name} (cut down for a test)\") }}\n"),
            )?;
        }
        cut.push(word.to_string());
    }
    if cut.is_empty() {
        return Err(Fail::new(format!("{}: no build target found to cut down", dst.join("hack/lib/golang.sh"))));
    }
    Ok(cut)
}

fn go_files(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<Utf8PathBuf> = rd
        .flatten()
        .filter_map(|e| Utf8PathBuf::from_path_buf(e.path()).ok())
        .filter(|p| p.extension() == Some("go") && p.is_file())
        .collect();
    v.sort();
    v
}

/// The `package` clause of a Go file.
fn package_of(file: &Utf8Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| l.strip_prefix("package ")).map(|p| p.trim().to_string())
}

/// The base images of the tree's server images (`KUBE_BASE_IMAGE_REGISTRY/NAME:TAG` in
/// build/common.sh: go-runner, debian-iptables), made on `cli`'s engine as tiny imported images
/// under `registry` (a test-only name). The packaging's Dockerfiles only COPY a binary in.
pub fn base_image_stand_ins(cli: &Cli, tree: &Utf8Path, registry: &str) -> Result<Vec<String>, Fail> {
    let common = fs_err::read_to_string(tree.join("build/common.sh"))?;
    let mut tags = Vec::new();
    for (name, var) in [("go-runner", "go_runner_version"), ("debian-iptables", "debian_iptables_version")] {
        let tag = common
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("local {var}=")[..]).map(str::to_string))
            .ok_or_else(|| Fail::new(format!("build/common.sh: no {var}")))?;
        tags.push(format!("{registry}/{name}:{tag}"));
    }
    let dir = crate::scratch("base-stand-in");
    fs_err::create_dir_all(dir.join("root/etc"))?;
    fs_err::write(dir.join("root/etc/stand-in"), "a test-only base image\n")?;
    Proc::new("tar").args(["-C"]).arg(dir.join("root")).args(["-cf"]).arg(dir.join("root.tar")).arg(".").read()?;
    for t in &tags {
        let out = cli.proc(&["import", dir.join("root.tar").as_str(), t]).output()?;
        if !out.success() {
            return Err(Fail::new(format!("importing {t}: {}", out.error_lines(2))));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(tags)
}
