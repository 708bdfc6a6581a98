//! Did you mean: the closest of the allowed words to a misspelt one, used for
//! keys and node ids by the loader, and for action targets by the engine.

/// The allowed word closest to `word`, when it is close (a likely typo).
pub fn closest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let chars = word.chars().count();
    let near = |a: &str| a.chars().count().abs_diff(chars) <= 2.max(a.len() / 4);
    allowed
        .iter()
        // The distance is at least the difference in length: skip the hopeless.
        .filter(|a| near(a))
        .filter(|a| a.chars().count() <= MAX_WORD && chars <= MAX_WORD)
        .map(|a| (strsim::levenshtein(word, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Longest word compared, in characters: the distance costs the product of
/// the lengths, and a longer word is no typo of a key.
const MAX_WORD: usize = 64;

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_typo_gets_the_closest_word_and_a_stranger_gets_none() {
        let allowed = ["depends_on", "timeout_ms", "retry_count"];
        assert_eq!(closest("depend_on", &allowed), Some("depends_on"));
        assert_eq!(closest("timeot_ms", &allowed), Some("timeout_ms"));
        assert_eq!(closest("colour", &allowed), None);
    }
}
