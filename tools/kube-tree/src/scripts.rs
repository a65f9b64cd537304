//! What the tree's own build scripts say (hack/lib/golang.sh, hack/lib/version.sh), read from
//! the files rather than assumed per era: platform lists, static binaries, the minimum Go,
//! the default and debug link flags, and the packages the version ldflags are stamped into.

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
}

impl GolangSh {
    pub fn read(tree: &Tree) -> GolangSh {
        let text = std::fs::read_to_string(tree.path("hack/lib/golang.sh")).unwrap_or_default();
        GolangSh::parse(&text)
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
pub fn version_ldflag_packages(tree: &Tree) -> Vec<String> {
    let text = std::fs::read_to_string(tree.path("hack/lib/version.sh")).unwrap_or_default();
    let mut pkgs = Vec::new();
    for part in text.split("-X '").skip(1) {
        let Some(end) = part.find(".${key}=") else { continue };
        let pkg = part[..end].replace("${KUBE_GO_PACKAGE}", "k8s.io/kubernetes");
        if !pkgs.contains(&pkg) {
            pkgs.push(pkg);
        }
    }
    pkgs
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
}
