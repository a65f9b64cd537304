//! `build/dependencies.yaml` (zeitgeist's format), read the way Kubernetes ships it: a refPath
//! without `match` means every line; the known `mathc:` typo is taken as `match` with a warning.
//! The file is parsed twice: by a real YAML parser (yaml-rust2, maintained, pure Rust), which
//! decides what the file *means* and refuses broken YAML or an unexpected shape; and by a small
//! line reader, which knows on which line each value stands so that a bump edits lines in place.
//! The line reader is trusted only when both agree ([`DepsYaml::read`]).

use yaml_rust2::{Yaml, YamlLoader};

/// One `{path, match}` of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPath {
    pub path: String,
    /// None: every line of the file.
    pub matcher: Option<String>,
    pub line: usize,
}

/// One dependency entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    /// Line of the `version:` field (1-based), 0 if absent.
    pub version_line: usize,
    pub ref_paths: Vec<RefPath>,
    pub line: usize,
}

/// The parsed file plus what was tolerated.
#[derive(Debug, Clone, Default)]
pub struct DepsYaml {
    pub deps: Vec<Dependency>,
    pub warnings: Vec<String>,
}

/// A YAML scalar as written: quoted ('..' with '' escapes, ".." with \" and \\), or plain
/// (a trailing ` #` comment dropped).
pub fn scalar(raw: &str) -> String {
    let t = raw.trim();
    if let Some(inner) = t.strip_prefix('\'').and_then(|s| s.rfind('\'').map(|i| &s[..i])) {
        return inner.replace("''", "'");
    }
    if let Some(rest) = t.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some(o) => {
                        out.push('\\');
                        out.push(o);
                    }
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return out;
    }
    match t.find(" #") {
        Some(i) => t[..i].trim_end().to_string(),
        None => t.to_string(),
    }
}

impl DepsYaml {
    pub fn parse(text: &str) -> DepsYaml {
        let mut y = DepsYaml::default();
        let mut in_refs = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (dash, body) = match t.strip_prefix("- ") {
                Some(b) => (true, b.trim_start()),
                None => (false, t),
            };
            let Some((key, val)) = body.split_once(':') else { continue };
            let key = key.trim();
            let val = scalar(val);
            match (dash, key) {
                (true, "name") => {
                    y.deps.push(Dependency { name: val, line, ..Default::default() });
                    in_refs = false;
                }
                (false, "version") if !in_refs => {
                    if let Some(d) = y.deps.last_mut() {
                        d.version = val;
                        d.version_line = line;
                    }
                }
                (false, "refPaths") => in_refs = true,
                (true, "path") if in_refs => {
                    if let Some(d) = y.deps.last_mut() {
                        d.ref_paths.push(RefPath { path: val, matcher: None, line });
                    }
                }
                (false, "match") | (false, "mathc") if in_refs => {
                    if key == "mathc" {
                        y.warnings.push(format!(
                            "build/dependencies.yaml:{line}: `mathc:` read as `match:` (typo in the file)"
                        ));
                    }
                    if let Some(r) = y.deps.last_mut().and_then(|d| d.ref_paths.last_mut()) {
                        r.matcher = Some(val).filter(|v| !v.is_empty());
                    }
                }
                (false, k) if !in_refs && k != "version" => {}
                _ => {}
            }
        }
        y
    }

    /// The file as a Kubernetes tree ships it, or why it cannot be read (a one-line reason with
    /// the line where known): broken YAML, no `dependencies` list, an entry without a name or
    /// version, a refPath without a path, or a layout the line reader does not follow.
    pub fn read(text: &str) -> Result<DepsYaml, String> {
        let docs = YamlLoader::load_from_str(text)
            .map_err(|e| format!("line {}: not valid YAML: {}", e.marker().line(), e.info()))?;
        let doc = match docs.as_slice() {
            [] => return Err("empty: no `dependencies:` list".into()),
            [d] => d,
            _ => return Err("several YAML documents; expected one with a `dependencies:` list".into()),
        };
        let list = match &doc["dependencies"] {
            Yaml::Array(a) => a,
            Yaml::BadValue => return Err("no `dependencies:` key at the top level".into()),
            other => return Err(format!("`dependencies:` is {}, not a list of entries", kind(other))),
        };
        let y = DepsYaml::parse(text);
        let mut meant = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let at = match y.deps.get(i) {
                Some(d) => format!("line {}: entry {}", d.line, i + 1),
                None => format!("entry {}", i + 1),
            };
            let name = text_of(&e["name"]).ok_or_else(|| format!("{at} has no `name:`"))?;
            let version = text_of(&e["version"]).ok_or_else(|| format!("{at} ({name}) has no scalar `version:`"))?;
            let refs: &[Yaml] = match &e["refPaths"] {
                Yaml::Array(a) => a,
                Yaml::BadValue | Yaml::Null => &[],
                other => return Err(format!("{at} ({name}): `refPaths:` is {}, not a list", kind(other))),
            };
            let mut want = Vec::new();
            for r in refs {
                let path = text_of(&r["path"]).ok_or_else(|| format!("{at} ({name}): a refPath without `path:`"))?;
                let m = [&r["match"], &r["mathc"]].into_iter().find(|m| !matches!(m, Yaml::BadValue | Yaml::Null));
                let m = match m {
                    None => None,
                    Some(m) => {
                        Some(text_of(m).ok_or_else(|| format!("{at} ({name}): `match:` of {path} is not a string"))?)
                    }
                };
                want.push((path, m.filter(|m| !m.is_empty())));
            }
            meant.push((at, name, version, want));
        }
        if y.deps.len() != meant.len() {
            return Err(format!(
                "{} entries in the YAML but {} read line by line: a layout this tool does not edit safely",
                meant.len(),
                y.deps.len()
            ));
        }
        for ((at, name, version, want), d) in meant.into_iter().zip(&y.deps) {
            let got: Vec<_> = d.ref_paths.iter().map(|r| (r.path.clone(), r.matcher.clone())).collect();
            if d.name != name || d.version != version || got != want {
                return Err(format!(
                    "{at} ({name}): a layout this tool does not edit safely (the line reader sees {:?} {:?})",
                    d.name, d.version
                ));
            }
        }
        Ok(y)
    }

    pub fn get(&self, name: &str) -> Option<&Dependency> {
        self.deps.iter().find(|d| d.name == name)
    }
}

/// A scalar as text (`1.20` is a YAML float; its text is what the file says).
fn text_of(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn kind(y: &Yaml) -> &'static str {
    match y {
        Yaml::Array(_) => "a list",
        Yaml::Hash(_) => "a mapping",
        Yaml::Null => "empty",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: &str = r#"dependencies:
  # Golang
  - name: "golang: upstream version"
    version: 1.15.5
    refPaths:
    - path: build/build-image/cross/VERSION
    - path: build/root/WORKSPACE
      match: (override_)?go_version = "\d+.\d+(alpha|beta|rc)?\.?\d+"
    - path: staging/publishing/rules.yaml
      match: 'default-go-version\: \d+.\d+(alpha|beta|rc)?\.?(\d+)?'

  - name: "cadvisor"
    version: 0.38.6
    upstream:
      flavour: github
    refPaths:
    - path: go.mod
      mathc: github.com/google/cadvisor v\d+ # old typo
"#;

    #[test]
    fn parses_entries_refpaths_and_typos() {
        let y = DepsYaml::parse(Y);
        assert_eq!(y.deps.len(), 2);
        let g = y.get("golang: upstream version").unwrap();
        assert_eq!((g.version.as_str(), g.version_line), ("1.15.5", 4));
        assert_eq!(g.ref_paths.len(), 3);
        assert_eq!(g.ref_paths[0].matcher, None);
        assert_eq!(
            g.ref_paths[1].matcher.as_deref(),
            Some(r#"(override_)?go_version = "\d+.\d+(alpha|beta|rc)?\.?\d+""#)
        );
        assert_eq!(g.ref_paths[2].matcher.as_deref(), Some(r"default-go-version\: \d+.\d+(alpha|beta|rc)?\.?(\d+)?"));
        let c = y.get("cadvisor").unwrap();
        assert_eq!(c.ref_paths[0].matcher.as_deref(), Some(r"github.com/google/cadvisor v\d+"));
        assert_eq!(y.warnings.len(), 1);
    }

    #[test]
    fn read_refuses_what_it_cannot_understand() {
        assert_eq!(DepsYaml::read(Y).unwrap().deps.len(), 2);
        for (text, why) in [
            ("", "empty"),
            ("# only a comment\n", "empty"),
            ("dependencies: 42\n", "not a list"),
            ("other: []\n", "no `dependencies:` key"),
            ("dependencies:\n  - name: [\n", "not valid YAML"),
            ("dependencies:\n  - version: 1.15.5\n", "no `name:`"),
            ("dependencies:\n  - name: golang\n", "no scalar `version:`"),
            (
                "dependencies:\n  - name: golang\n    version: 1.15.5\n    refPaths:\n    - match: x\n",
                "without `path:`",
            ),
            ("dependencies:\n  - {name: golang, version: 1.15.5}\n", "does not edit safely"),
            ("dependencies:\n- name: a\n  version: 1\n---\nx: 1\n", "several YAML documents"),
        ] {
            let e = DepsYaml::read(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar(" 'it''s' "), "it's");
        assert_eq!(scalar(r#" "a\"b\d" "#), r#"a"b\d"#);
        assert_eq!(scalar(" plain # comment"), "plain");
    }
}
