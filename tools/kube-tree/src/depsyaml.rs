//! `build/dependencies.yaml` (zeitgeist's format), read the way Kubernetes ships it: a refPath
//! without `match` means every line; the known `mathc:` typo is taken as `match` with a warning.
//! Only the subset the file uses is understood (a list of entries with scalar fields and a list
//! of refPaths); everything else is skipped, so no YAML library is needed.

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
                        y.warnings.push(format!("build/dependencies.yaml:{line}: `mathc:` read as `match:` (typo in the file)"));
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

    pub fn get(&self, name: &str) -> Option<&Dependency> {
        self.deps.iter().find(|d| d.name == name)
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
        assert_eq!(g.ref_paths[1].matcher.as_deref(), Some(r#"(override_)?go_version = "\d+.\d+(alpha|beta|rc)?\.?\d+""#));
        assert_eq!(g.ref_paths[2].matcher.as_deref(), Some(r"default-go-version\: \d+.\d+(alpha|beta|rc)?\.?(\d+)?"));
        let c = y.get("cadvisor").unwrap();
        assert_eq!(c.ref_paths[0].matcher.as_deref(), Some(r"github.com/google/cadvisor v\d+"));
        assert_eq!(y.warnings.len(), 1);
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar(" 'it''s' "), "it's");
        assert_eq!(scalar(r#" "a\"b\d" "#), r#"a"b\d"#);
        assert_eq!(scalar(" plain # comment"), "plain");
    }
}
