//! Secret generation and comparison. Every comparison of a secret goes through [`ct_eq`].

use rand::RngExt;
use subtle::ConstantTimeEq;

/// Compares two secrets in time independent of where they differ.
///
/// Lengths are not secret (every token we issue has a fixed length), so an early
/// return on a length mismatch leaks nothing useful.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A random URL-safe token of `len` alphanumeric characters (about 5.95 bits each).
pub fn token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_matches_only_equal_strings() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
        assert!(!ct_eq("", "a"));
    }

    #[test]
    fn tokens_are_alphanumeric_and_distinct() {
        let a = token(40);
        let b = token(40);
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
