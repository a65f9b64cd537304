//! Unified diffs (`git apply` accepts them) for edits that replace lines one for one, which is
//! what every rewrite in this kit does: no line is inserted or deleted.

/// A unified diff of `old` -> `new` for the file `path` (relative, `a/` and `b/` prefixes added),
/// with 3 lines of context. Both texts must have the same number of lines.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    assert_eq!(a.len(), b.len(), "line-for-line edits only");
    let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    if changed.is_empty() {
        return String::new();
    }
    let mut out = format!("diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n");
    let ctx = 3;
    let mut i = 0;
    while i < changed.len() {
        // Grow the hunk while the next change is within 2*ctx lines.
        let mut j = i;
        while j + 1 < changed.len() && changed[j + 1] - changed[j] <= 2 * ctx {
            j += 1;
        }
        let start = changed[i].saturating_sub(ctx);
        let end = (changed[j] + ctx + 1).min(a.len());
        out += &format!("@@ -{},{} +{},{} @@\n", start + 1, end - start, start + 1, end - start);
        for k in start..end {
            if a[k] == b[k] {
                push_line(&mut out, ' ', a[k]);
            } else {
                push_line(&mut out, '-', a[k]);
                push_line(&mut out, '+', b[k]);
            }
        }
        i = j + 1;
    }
    out
}

fn push_line(out: &mut String, tag: char, line: &str) {
    out.push(tag);
    out.push_str(line);
    if !line.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
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
        assert_eq!(unified("V", "v1", "v2"), "diff --git a/V b/V\n--- a/V\n+++ b/V\n@@ -1,1 +1,1 @@\n-v1\n\\ No newline at end of file\n+v2\n\\ No newline at end of file\n");
    }
}
