//! The labels on everything this kit makes (containers, images, the shared cache volume), so
//! that a later run or make-clean can tell the kit's objects and their tree apart.

pub const LABEL_OWNER: &str = "io.k8s-build-kit.owner";
pub const LABEL_TREE: &str = "io.k8s-build-kit.tree";
pub const LABEL_HASH: &str = "io.k8s-build-kit.hash";
/// On the rsync daemon: what it was started from, so a later run knows whether it may reuse it.
pub const LABEL_KEY: &str = "io.k8s-build-kit.key";
/// On a data container seeded from another tree's: [`TIMES_ARRIVAL`], its files carry the times
/// they had there or the time they arrived, not the host's (see `seed`).
pub const LABEL_TIMES: &str = "io.k8s-build-kit.times";
/// The value of [`LABEL_TIMES`].
pub const TIMES_ARRIVAL: &str = "arrival";
/// On a data container made with `--cache private`: `private`; it is never a seed (see `seed`).
pub const LABEL_CACHE: &str = "io.k8s-build-kit.cache";
/// The value of [`LABEL_CACHE`].
pub const CACHE_PRIVATE: &str = "private";
/// The value of [`LABEL_OWNER`].
pub const OWNER: &str = "k8s-build-kit";
/// On the kube-build image: the hash of the context it was built from (see `image`).
pub const LABEL_CONTEXT: &str = "io.k8s-build-kit.context";

/// `LABEL k="v" ...` for a Dockerfile. The legacy builder makes each `--label` flag a step of its
/// own, a container committed per label (13-15 s each on fuse-overlayfs), and the tree's labels
/// differ per tree and branch: four flags cost each new one about 50 s, a line one step.
/// Values are quoted for the Dockerfile (`\`, `"` and `$`, which LABEL would expand, escaped); a
/// control character is refused (a line break would start an instruction).
pub fn dockerfile_line(pairs: &[(&str, &str)]) -> Result<String, kube_tree::Fail> {
    let mut line = String::from("LABEL");
    for (k, v) in pairs {
        if k.chars().chain(v.chars()).any(char::is_control) {
            return Err(kube_tree::Fail::new(format!("label {k}: a control character in `{}`", v.escape_debug())));
        }
        let quoted: String =
            v.chars().flat_map(|c| if matches!(c, '\\' | '"' | '$') { vec!['\\', c] } else { vec![c] }).collect();
        line += &format!(" {k}=\"{quoted}\"");
    }
    Ok(line + "\n")
}

#[cfg(test)]
mod tests {
    use super::dockerfile_line;

    #[test]
    fn a_label_line_quotes_what_a_dockerfile_would_read_otherwise() {
        let line = dockerfile_line(&[("a", "/src/my k8s"), ("b", r#"x"$HOME\y"#)]).unwrap();
        assert_eq!(line, "LABEL a=\"/src/my k8s\" b=\"x\\\"\\$HOME\\\\y\"\n");
        assert!(dockerfile_line(&[("a", "x\nRUN rm -rf /")]).is_err());
    }
}
