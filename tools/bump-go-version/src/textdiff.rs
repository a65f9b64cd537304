//! Unified diffs that `git apply` accepts, for the kit's `--diff` outputs.

/// A unified diff of `old` -> `new` for the file `path` (relative, `a/` and `b/` prefixes added),
/// with 3 lines of context, as `git diff` writes it (the diff itself is the `similar` crate's).
pub fn unified(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let body = diff.unified_diff().context_radius(3).header(&format!("a/{path}"), &format!("b/{path}")).to_string();
    format!("diff --git a/{path} b/{path}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_merge_and_split_by_context() {
        let old: String = (1..=20).map(|i| format!("l{i}\n")).collect();
        let new = old.replace("l2\n", "L2\n").replace("l5\n", "L5\n").replace("l18\n", "L18\n");
        let d = unified("f.txt", &old, &new);
        assert!(
            d.starts_with("diff --git a/f.txt b/f.txt\n--- a/f.txt\n+++ b/f.txt\n@@ -1,8 +1,8 @@\n l1\n-l2\n+L2\n"),
            "{d}"
        );
        assert!(d.contains("@@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+L18\n l19\n l20\n"), "{d}");
        assert_eq!(unified("f", "same\n", "same\n"), "");
    }

    #[test]
    fn marks_a_missing_final_newline() {
        assert_eq!(unified("V", "v1", "v2"), "diff --git a/V b/V\n--- a/V\n+++ b/V\n@@ -1 +1 @@\n-v1\n\\ No newline at end of file\n+v2\n\\ No newline at end of file\n");
    }
}
