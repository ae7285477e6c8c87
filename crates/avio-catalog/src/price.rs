//! Price and number normalization: "1 234,50 ₽" → "1234.5", currency codes, float formatting.

/// Parses a price as written in a price list and returns a plain decimal string.
///
/// Grouping spaces (regular, no-break, thin), `,` or `.` thousands separators, a decimal
/// comma, currency marks (₽, руб., р., $, €, USD, EUR, RUB) and an "от"/"from" prefix are
/// understood. Trailing zeros of the fraction are dropped ("150,190.00 ₽" → "150190").
/// Returns `None` when the text is not a single number ("по запросу", "5–7 тыс.").
pub fn parse_price(text: &str) -> Option<String> {
    let lowered = text.trim().to_lowercase();
    let mut rest = lowered.as_str();
    for prefix in ["от", "from", "цена", "~", "$", "€", "₽", "usd", "eur"] {
        if let Some(stripped) = rest.strip_prefix(prefix) {
            // A word prefix must stand apart ("от 5"), a symbol may touch the digits ("$5").
            let symbol = !prefix.starts_with(|c: char| c.is_alphabetic());
            if symbol || stripped.starts_with(|c: char| is_space(c) || c.is_ascii_digit()) {
                rest = stripped.trim_start_matches(is_space);
            }
        }
    }
    let mut number = String::with_capacity(rest.len());
    let mut seen_digit = false;
    let mut tail_start = rest.len();
    for (idx, ch) in rest.char_indices() {
        match ch {
            '0'..='9' => {
                seen_digit = true;
                number.push(ch);
            }
            ',' | '.' => number.push(ch),
            '-' | '+' if !seen_digit && number.is_empty() => {
                if ch == '-' {
                    number.push('-');
                }
            }
            c if is_space(c) || c == '\'' => {}
            _ => {
                tail_start = idx;
                break;
            }
        }
    }
    if !seen_digit {
        return None;
    }
    let tail = rest.get(tail_start..).unwrap_or("");
    if !is_currency_tail(tail) {
        return None;
    }
    normalize_number(&number)
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{00a0}' | '\u{2007}' | '\u{2009}' | '\u{202f}' | '\u{200a}')
}

/// What may follow the number: a currency mark, a per-unit suffix ("/шт"), nothing else.
fn is_currency_tail(tail: &str) -> bool {
    let tail = tail.trim_matches(|c: char| is_space(c) || c == '.');
    let tail = match tail.find('/') {
        Some(slash) => tail.get(..slash).unwrap_or("").trim_matches(|c: char| is_space(c) || c == '.'),
        None => tail,
    };
    matches!(tail, "" | "₽" | "руб" | "р" | "rub" | "rur" | "$" | "usd" | "€" | "eur" | "у.е" | "рублей" | "руб.-")
        || tail == "₽ с ндс"
        || tail == "руб с ндс"
}

/// Turns digits with `,`/`.` separators into a canonical decimal.
fn normalize_number(raw: &str) -> Option<String> {
    let (negative, raw) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let raw = raw.trim_end_matches(['.', ',']);
    let last_comma = raw.rfind(',');
    let last_dot = raw.rfind('.');
    let decimal_at = match (last_comma, last_dot) {
        (Some(c), Some(d)) => Some(c.max(d)),
        (Some(c), None) => {
            let after = raw.len() - c - 1;
            let commas = raw.matches(',').count();
            // "12990,50" is a decimal comma; "150,190" and "1,234,567" group thousands.
            if commas == 1 && after != 3 { Some(c) } else { None }
        }
        (None, Some(d)) => {
            let dots = raw.matches('.').count();
            if dots == 1 { Some(d) } else { None }
        }
        (None, None) => None,
    };
    let (int_part, frac_part) = match decimal_at {
        Some(at) => (raw.get(..at)?, raw.get(at + 1..)?),
        None => (raw, ""),
    };
    let int_digits: String = int_part.chars().filter(char::is_ascii_digit).collect();
    if frac_part.contains([',', '.']) {
        return None;
    }
    let int_digits = int_digits.trim_start_matches('0');
    let frac = frac_part.trim_end_matches('0');
    if int_digits.len() > 18 || frac.len() > 9 {
        return None;
    }
    let mut out = String::new();
    if negative && !(int_digits.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int_digits.is_empty() { "0" } else { int_digits });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// The ISO currency a price text names; Russian price lists default to RUB.
pub(crate) fn explicit_currency(text: &str) -> Option<&'static str> {
    let lowered = text.to_lowercase();
    if lowered.contains('$') || lowered.contains("usd") || lowered.contains("долл") {
        Some("USD")
    } else if lowered.contains('€') || lowered.contains("eur") || lowered.contains("евро") {
        Some("EUR")
    } else if lowered.contains('₽') || lowered.contains("руб") || lowered.contains("rub") || lowered.contains("rur")
    {
        Some("RUB")
    } else {
        None
    }
}

/// Formats a spreadsheet number without float noise: 12990.5 → "12990.5", 5.0 → "5".
pub(crate) fn format_float(value: f64) -> String {
    if !value.is_finite() {
        return String::new();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    // Six decimals hide binary noise from formulas (0.1 + 0.2) yet keep kopecks exact.
    let fixed = format!("{value:.6}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" { "0".to_string() } else { trimmed.to_string() }
}

/// Folds whitespace runs (including no-break and thin spaces) into one space and trims.
pub(crate) fn fold_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1 234,50 ₽", Some("1234.5"))]
    #[case("150,190.00 ₽", Some("150190"))]
    #[case("12 990", Some("12990"))]
    #[case("от 5 000", Some("5000"))]
    #[case("12\u{a0}990,50\u{a0}₽", Some("12990.5"))]
    #[case("12\u{2009}990 руб.", Some("12990"))]
    #[case("12\u{202f}990 р.", Some("12990"))]
    #[case("12990,00", Some("12990"))]
    #[case("12990.5", Some("12990.5"))]
    #[case("1,234,567.89", Some("1234567.89"))]
    #[case("1.234.567,89", Some("1234567.89"))]
    #[case("$1,299.99", Some("1299.99"))]
    #[case("1 299,99 $", Some("1299.99"))]
    #[case("99 €", Some("99"))]
    #[case("0,5", Some("0.5"))]
    #[case("0", Some("0"))]
    #[case("500 руб./шт", Some("500"))]
    #[case("по запросу", None)]
    #[case("", None)]
    #[case("5 000 – 7 000", None)]
    #[case("Диван 2×1,6 м", None)]
    #[case("АБ-123", None)]
    #[case("1,2,3,4", Some("1234"))]
    #[case("99999999999999999999999", None)]
    fn parse_price_normalizes(#[case] input: &str, #[case] expected: Option<&str>) {
        assert_eq!(parse_price(input).as_deref(), expected, "input {input:?}");
    }

    #[rstest]
    #[case(12990.5, "12990.5")]
    #[case(5.0, "5")]
    #[case(0.1 + 0.2, "0.3")]
    #[case(1234.56, "1234.56")]
    #[case(-0.0000001, "0")]
    #[case(f64::NAN, "")]
    fn format_float_has_no_noise(#[case] value: f64, #[case] expected: &str) {
        assert_eq!(format_float(value), expected);
    }

    #[rstest]
    #[case("12 990 ₽", Some("RUB"))]
    #[case("10 USD", Some("USD"))]
    #[case("€ 5", Some("EUR"))]
    #[case("12990", None)]
    fn currency_is_detected(#[case] input: &str, #[case] expected: Option<&str>) {
        assert_eq!(explicit_currency(input), expected);
    }
}
