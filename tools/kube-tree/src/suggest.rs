//! "Did you mean": the known word closest to a mistyped one (a tool name, a flag), by edit
//! distance, when it is close enough to be a typo rather than another word.

/// The Levenshtein distance between `a` and `b` (insertions, deletions, substitutions), on chars.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // One row of the table at a time: prev[j] is the distance from a's prefix to b[..j].
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is a likely typo of it: at most 2 edits, and fewer
/// than a third of the word's length (so `-x` suggests nothing). Ties go to the first listed.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 2.min(word.chars().count() / 3);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean `X`?)` for a message, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{closest, distance};

    #[test]
    fn distances() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("chek-vendor", "check-vendor"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn only_likely_typos_are_suggested() {
        let tools = ["setup-go", "check-vendor", "vendor", "doctor", "build"];
        assert_eq!(closest("chek-vendor", tools), Some("check-vendor"));
        assert_eq!(closest("doctr", tools), Some("doctor"));
        assert_eq!(closest("--dryrun", ["--dry-run", "--force"]), Some("--dry-run"));
        assert_eq!(closest("-x", ["-q", "-v"]), None, "too short to guess");
        assert_eq!(closest("compile", tools), None, "another word, not a typo");
        assert_eq!(closest("doctor", tools), None, "an exact match is no suggestion");
    }
}
