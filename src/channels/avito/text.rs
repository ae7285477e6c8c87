//! Splitting long replies for Avito, whose send endpoint takes at most 1000 characters
//! per message. Pure: no IO.

/// Avito's limit on one text message, in characters (not bytes).
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Splits `text` into parts of at most `max` characters, cutting after the last
/// sentence end (or newline) in the window, else at the last space, else mid-word.
/// A cut is only taken past half the window, so no part is needlessly tiny.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((window_end, _)) = rest.char_indices().nth(max) else {
            parts.push(rest.to_string());
            break;
        };
        let cut = sentence_cut(rest, window_end).or_else(|| word_cut(rest, window_end)).unwrap_or(window_end);
        let (head, tail) = rest.split_at(cut);
        let head = head.trim_end();
        if !head.is_empty() {
            parts.push(head.to_string());
        }
        rest = tail.trim_start();
    }
    parts
}

/// The byte offset just after the last sentence end inside `text[..window_end]`.
fn sentence_cut(text: &str, window_end: usize) -> Option<usize> {
    let min = window_end / 2;
    let mut best = None;
    let mut chars = text.char_indices().peekable();
    while let Some((idx, c)) = chars.next() {
        let end = idx + c.len_utf8();
        if end > window_end {
            break;
        }
        let boundary = match c {
            '\n' => true,
            // Punctuation ends a sentence only when whitespace follows ("3.5" is not an end).
            '.' | '!' | '?' | '…' => chars.peek().is_none_or(|(_, next)| next.is_whitespace()),
            _ => false,
        };
        if boundary && end >= min {
            best = Some(end);
        }
    }
    best
}

/// The byte offset of the last whitespace inside `text[..window_end]`.
fn word_cut(text: &str, window_end: usize) -> Option<usize> {
    text[..window_end].rfind(char::is_whitespace).filter(|&idx| idx >= window_end / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_text("  Здравствуйте!  ", 1000), vec!["Здравствуйте!"]);
        assert!(split_text("   ", 1000).is_empty());
    }

    #[test]
    fn long_text_splits_after_sentences_within_the_limit() {
        let sentence = "Диван угловой стоит 45 000 ₽, доставка по Казани бесплатная. ";
        let text = sentence.repeat(40);
        let parts = split_text(&text, MAX_MESSAGE_CHARS);
        assert!(parts.len() >= 3, "{}", parts.len());
        for part in &parts {
            assert!(chars(part) <= MAX_MESSAGE_CHARS, "{}", chars(part));
            assert!(part.ends_with("бесплатная."), "cut mid-sentence: …{}", &part[part.len() - 20..]);
        }
        assert_eq!(parts.join(" "), text.trim());
    }

    #[test]
    fn a_text_without_sentence_ends_splits_on_spaces() {
        let text = "слово ".repeat(400);
        let parts = split_text(&text, 100);
        assert!(parts.iter().all(|p| chars(p) <= 100 && !p.starts_with(' ') && p.ends_with("слово")));
        assert_eq!(parts.join(" "), text.trim());
    }

    #[test]
    fn a_single_huge_word_is_cut_hard() {
        let text = "я".repeat(2500);
        let parts = split_text(&text, MAX_MESSAGE_CHARS);
        assert_eq!(parts.iter().map(|p| chars(p)).collect::<Vec<_>>(), vec![1000, 1000, 500]);
    }

    #[test]
    fn decimal_points_are_not_sentence_ends() {
        let text = format!("{} цена 3.5 тыс {}", "а".repeat(60), "б ".repeat(30));
        for part in split_text(&text, 70) {
            assert!(!part.ends_with("3."), "{part}");
        }
    }
}
