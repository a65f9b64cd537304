//! What the tree's own build scripts say (hack/lib/golang.sh, hack/lib/version.sh), read from
//! the files rather than assumed per era: platform lists, static binaries, the minimum Go,
//! the default and debug link flags, and the packages the version ldflags are stamped into.

use crate::fail::Result;
use crate::read::Cap;
use crate::tree::Tree;

/// The words of a bash array literal `NAME=(` ... `)` (also `readonly NAME=(`), comments dropped.
pub fn bash_array(text: &str, name: &str) -> Option<Vec<String>> {
    let start = format!("{name}=(");
    let mut lines = text.lines().skip_while(|l| {
        let t = l.trim_start();
        !(t.starts_with(&start) || t.strip_prefix("readonly ").is_some_and(|r| r.starts_with(&start)))
    });
    let first = lines.next()?;
    let mut words = Vec::new();
    let mut rest = first[first.find(&start)? + start.len()..].to_string();
    loop {
        let code = rest.split('#').next().unwrap_or("");
        let (code, done) = match code.find(')') {
            Some(i) => (&code[..i], true),
            None => (code, false),
        };
        words.extend(code.split_whitespace().map(|w| w.trim_matches('"').to_string()));
        if done {
            return Some(words);
        }
        rest = lines.next()?.to_string();
    }
}

/// Facts from hack/lib/golang.sh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GolangSh {
    pub server_platforms: Vec<String>,
    pub node_platforms: Vec<String>,
    pub client_platforms: Vec<String>,
    pub test_platforms: Vec<String>,
    /// Binaries built with CGO_ENABLED=0 (KUBE_STATIC_LIBRARIES, later KUBE_STATIC_BINARIES).
    pub statics: Vec<String>,
    /// `minimum_go_version=go1.15.0` -> `1.15.0`.
    pub minimum_go: Option<String>,
    /// The script knows `DBG=1` (later eras): -s -w and -trimpath unless debugging.
    pub dbg: bool,
    /// Default link flags when GOLDFLAGS is unset (`${GOLDFLAGS=-s -w -buildid=}`), older eras.
    pub default_goldflags: Option<String>,
    /// What `make` with no WHAT builds: `KUBE_ALL_TARGETS` (server, client, test and server-test
    /// targets), empty when the script cannot be read.
    pub all_targets: Vec<String>,
    /// `KUBE_PARALLEL_BUILD_MEMORY`: GB of memory from which platforms build in parallel.
    pub parallel_memory_gb: Option<u64>,
}

/// A target list of the script: the array `NAME=(...)` (older trees), else the `targets`
/// array of the function `kube::golang::<func>()` with its `targets+=(...)` additions (later
/// trees; an addition under an OSTYPE test counts only on that OS).
fn target_list(text: &str, name: &str, func: &str) -> Vec<String> {
    if let Some(v) = bash_array(text, name).filter(|v| !v.iter().any(|w| w.starts_with("$("))) {
        return v;
    }
    let head = format!("kube::golang::{func}() {{");
    let Some(start) = text.find(&head) else { return Vec::new() };
    let body = &text[start + head.len()..];
    let body = &body[..body.find("\n}").unwrap_or(body.len())];
    let mut v = bash_array(body, "local targets").unwrap_or_default();
    let mut os_guard: Option<bool> = None;
    for line in body.lines() {
        let t = line.trim();
        if t.starts_with("if ") && t.contains("OSTYPE") {
            os_guard = Some(t.contains(std::env::consts::OS));
        } else if t == "fi" {
            os_guard = None;
        } else if let Some(rest) = t.strip_prefix("targets+=(") {
            if os_guard != Some(false) {
                v.extend(rest.trim_end_matches(')').split_whitespace().map(str::to_string));
            }
        }
    }
    v
}

/// `KUBE_ALL_TARGETS`: its `"${KUBE_X_TARGETS[@]}"` parts resolved.
fn all_targets(text: &str) -> Vec<String> {
    let lists = [
        ("KUBE_SERVER_TARGETS", "server_targets"),
        ("KUBE_CLIENT_TARGETS", "client_targets"),
        ("KUBE_TEST_TARGETS", "test_targets"),
        ("KUBE_TEST_SERVER_TARGETS", "server_test_targets"),
    ];
    let parts = bash_array(text, "KUBE_ALL_TARGETS").unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        let inner = p.trim_start_matches("${").trim_end_matches("[@]}");
        let words = match lists.iter().find(|(n, _)| *n == inner) {
            Some((n, f)) => target_list(text, n, f),
            None if !p.starts_with('$') => vec![p.clone()],
            None => Vec::new(),
        };
        for w in words {
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

impl GolangSh {
    /// hack/lib/golang.sh of `tree` (a tree without one has no lists).
    pub fn read(tree: &Tree) -> Result<GolangSh> {
        let text = tree.read_text("hack/lib/golang.sh", Cap::SCRIPT)?.unwrap_or_default();
        Ok(GolangSh::parse(&text))
    }

    pub fn parse(text: &str) -> GolangSh {
        let arr = |n: &str| bash_array(text, n).unwrap_or_default();
        let statics = bash_array(text, "KUBE_STATIC_BINARIES")
            .or_else(|| bash_array(text, "KUBE_STATIC_LIBRARIES"))
            .unwrap_or_default();
        let minimum_go = text.lines().find_map(|l| {
            let v = l.trim().strip_prefix("minimum_go_version=go")?;
            Some(v.split(|c: char| c.is_whitespace() || c == ';' || c == '"').next()?.to_string())
        });
        let default_goldflags = text.find("${GOLDFLAGS=").map(|i| {
            let rest = &text[i + "${GOLDFLAGS=".len()..];
            rest[..rest.find('}').unwrap_or(0)].to_string()
        });
        GolangSh {
            server_platforms: arr("KUBE_SUPPORTED_SERVER_PLATFORMS"),
            node_platforms: arr("KUBE_SUPPORTED_NODE_PLATFORMS"),
            client_platforms: arr("KUBE_SUPPORTED_CLIENT_PLATFORMS"),
            test_platforms: arr("KUBE_SUPPORTED_TEST_PLATFORMS"),
            statics,
            minimum_go,
            dbg: text.contains("DBG:-") || text.contains("${DBG"),
            default_goldflags,
            all_targets: all_targets(text),
            parallel_memory_gb: text.lines().find_map(|l| {
                l.trim()
                    .trim_start_matches("readonly ")
                    .strip_prefix("KUBE_PARALLEL_BUILD_MEMORY=")?
                    .trim()
                    .parse()
                    .ok()
            }),
        }
    }

    /// Every platform the tree builds anything for.
    pub fn all_platforms(&self) -> Vec<String> {
        let mut v: Vec<String> =
            [&self.server_platforms, &self.node_platforms, &self.client_platforms, &self.test_platforms]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether `binary` (a target path such as cmd/kubectl) is built static.
    pub fn is_static(&self, binary: &str) -> bool {
        let name = binary.rsplit('/').next().unwrap_or(binary);
        self.statics.iter().any(|s| s == name)
    }
}

/// The packages hack/lib/version.sh stamps version variables into (`-X '<pkg>.<key>=<val>'`).
pub fn version_ldflag_packages(tree: &Tree) -> Result<Vec<String>> {
    let text = tree.read_text("hack/lib/version.sh", Cap::SCRIPT)?.unwrap_or_default();
    let mut pkgs = Vec::new();
    for part in text.split("-X '").skip(1) {
        let Some(end) = part.find(".${key}=") else { continue };
        let pkg = part[..end].replace("${KUBE_GO_PACKAGE}", "k8s.io/kubernetes");
        if !pkgs.contains(&pkg) {
            pkgs.push(pkg);
        }
    }
    Ok(pkgs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: &str = "readonly KUBE_SUPPORTED_SERVER_PLATFORMS=(\n  linux/amd64\n  linux/arm # 32-bit\n)\nKUBE_STATIC_LIBRARIES=(kube-apiserver kubectl)\n  minimum_go_version=go1.15.0\n    goldflags=\"${GOLDFLAGS=-s -w -buildid=} $(kube::version::ldflags)\"\n";

    #[test]
    fn reads_arrays_and_values() {
        let g = GolangSh::parse(SH);
        assert_eq!(g.server_platforms, ["linux/amd64", "linux/arm"]);
        assert_eq!(g.statics, ["kube-apiserver", "kubectl"]);
        assert!(g.is_static("cmd/kubectl") && !g.is_static("cmd/kubelet"));
        assert_eq!(g.minimum_go.as_deref(), Some("1.15.0"));
        assert_eq!(g.default_goldflags.as_deref(), Some("-s -w -buildid="));
        assert!(!g.dbg);
        assert_eq!(bash_array("X=(a b)\n", "Y"), None);
    }

    #[test]
    fn all_targets_from_functions_and_arrays() {
        let sh = "kube::golang::server_targets() {\n  local targets=(\n    cmd/kube-proxy\n    vendor/k8s.io/kube-aggregator\n  )\n  echo \"${targets[@]}\"\n}\nreadonly KUBE_CLIENT_TARGETS=(\n  cmd/kubectl\n)\nkube::golang::test_targets() {\n  local targets=(\n    cmd/linkcheck\n    test/e2e/e2e.test\n  )\n  echo\n}\nkube::golang::server_test_targets() {\n  local targets=(\n    cmd/kubemark\n  )\n\n  if [[ \"${OSTYPE:-}\" == \"linux\"* ]]; then\n    targets+=( test/e2e_node/e2e_node.test )\n  fi\n  echo\n}\nIFS=\" \" read -ra KUBE_SERVER_TARGETS <<< \"$(kube::golang::server_targets)\"\nreadonly KUBE_PARALLEL_BUILD_MEMORY=40\nreadonly KUBE_ALL_TARGETS=(\n  \"${KUBE_SERVER_TARGETS[@]}\"\n  \"${KUBE_CLIENT_TARGETS[@]}\"\n  \"${KUBE_TEST_TARGETS[@]}\"\n  \"${KUBE_TEST_SERVER_TARGETS[@]}\"\n)\n";
        let g = GolangSh::parse(sh);
        let mut want = vec![
            "cmd/kube-proxy",
            "vendor/k8s.io/kube-aggregator",
            "cmd/kubectl",
            "cmd/linkcheck",
            "test/e2e/e2e.test",
            "cmd/kubemark",
        ];
        if cfg!(target_os = "linux") {
            want.push("test/e2e_node/e2e_node.test");
        }
        assert_eq!(g.all_targets, want);
        assert_eq!(g.parallel_memory_gb, Some(40));
        // Era A: plain arrays.
        let a = GolangSh::parse("readonly KUBE_SERVER_TARGETS=(\n  cmd/kubelet\n)\nreadonly KUBE_CLIENT_TARGETS=(cmd/kubectl)\nreadonly KUBE_ALL_TARGETS=(\n  \"${KUBE_SERVER_TARGETS[@]}\"\n  \"${KUBE_CLIENT_TARGETS[@]}\"\n)\n");
        assert_eq!(a.all_targets, ["cmd/kubelet", "cmd/kubectl"]);
    }
}
