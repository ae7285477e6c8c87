//! Grounding (SPEC 7.3, 7.4): the price guard that checks every price in a reply
//! against the catalog prices of the products the reply names, and the offline
//! replies built from the catalog alone. Pure: no IO.

use std::collections::HashSet;

use super::search::{Analyzer, Product};

/// Prices written in `text`: numbers followed by a rouble marker (`₽`, `руб`, `р.`)
/// or preceded by one of the price words ("цена", "стоит", "за").
pub fn prices_in(text: &str) -> Vec<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut prices = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '-')) {
            i += 1;
            continue;
        }
        // A number with grouping spaces (plain, no-break, thin) and one decimal part.
        let start = i;
        let mut end = i;
        while end < chars.len() {
            let c = chars[end];
            let grouping = matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}')
                && end + 3 < chars.len() + 1
                && chars.get(end + 1..end + 4).is_some_and(|g| g.iter().all(char::is_ascii_digit))
                && chars.get(end + 4).is_none_or(|c| !c.is_ascii_digit());
            if c.is_ascii_digit()
                || grouping
                || ((c == ',' || c == '.') && chars.get(end + 1).is_some_and(char::is_ascii_digit))
            {
                end += 1;
            } else {
                break;
            }
        }
        let number: String = chars[start..end].iter().filter(|c| !c.is_whitespace() && **c != '\u{202f}').collect();
        let after: String = chars[end..chars.len().min(end + 6)].iter().collect::<String>().to_lowercase();
        let after = after.trim_start();
        let before: String = chars[start.saturating_sub(12)..start].iter().collect::<String>().to_lowercase();
        let marked = after.starts_with('₽')
            || after.starts_with("руб")
            || after.starts_with("р.")
            || after.starts_with("р ")
            || after == "р"
            || after.starts_with("rub")
            || ["цена", "стоит", "стоимость", "за ", "всего"].iter().any(|w| before.trim_end().ends_with(w.trim_end()));
        if marked && let Some(value) = parse_number(&number) {
            prices.push(value);
        }
        i = end.max(i + 1);
    }
    prices
}

fn parse_number(raw: &str) -> Option<f64> {
    // "1234,50" and "1234.50" are decimals; "150,190.00" has a grouping comma.
    let cleaned = if raw.contains(',') && raw.contains('.') { raw.replace(',', "") } else { raw.replace(',', ".") };
    cleaned.parse::<f64>().ok().filter(|v| *v > 0.0)
}

/// Products the reply names: its sku, or most of the distinctive words of its name.
pub fn named_products<'a>(reply: &str, products: &'a [Product], analyzer: &Analyzer) -> Vec<&'a Product> {
    let reply_lower = reply.to_lowercase();
    let reply_terms: HashSet<String> = analyzer.terms(reply).into_iter().collect();
    products
        .iter()
        .filter(|p| {
            if !p.sku.is_empty() && reply_lower.contains(&p.sku.to_lowercase()) {
                return true;
            }
            let name_terms: Vec<String> = analyzer.terms(&p.name);
            if name_terms.is_empty() {
                return false;
            }
            let present = name_terms.iter().filter(|t| reply_terms.contains(*t)).count();
            // Two thirds of the name's words (at least one) are in the reply.
            present * 3 >= name_terms.len() * 2 || (present >= 2 && name_terms.len() > 3)
        })
        .collect()
}

/// Prices in `reply` that are not the catalog price of a product the reply names.
pub fn unsupported_prices(reply: &str, products: &[Product], analyzer: &Analyzer) -> Vec<f64> {
    let named = named_products(reply, products, analyzer);
    let allowed: Vec<f64> = named.iter().filter_map(|p| p.price_value()).collect();
    prices_in(reply).into_iter().filter(|price| !allowed.iter().any(|a| (a - price).abs() < 0.005)).collect()
}

/// `12990` → `12 990 ₽`; `1234.5` → `1 234,50 ₽`.
pub fn format_price(value: f64) -> String {
    let whole = value.trunc() as u64;
    let cents = ((value - value.trunc()) * 100.0).round() as u64;
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    if cents > 0 { format!("{grouped},{cents:02} ₽") } else { format!("{grouped} ₽") }
}

fn availability(stock: &str) -> &'static str {
    let s = stock.trim().to_lowercase();
    if s.is_empty() {
        return "";
    }
    match s.parse::<f64>() {
        Ok(n) if n > 0.0 => ", в наличии",
        Ok(_) => ", под заказ",
        Err(_) if s.contains("нет") || s.contains("заказ") => ", под заказ",
        Err(_) => ", в наличии",
    }
}

/// One catalog line as the lead sees it: `Диван «Милан» — 45 990 ₽, в наличии`.
pub fn product_line(p: &Product) -> String {
    let price = p.price_value().map(format_price).unwrap_or_else(|| "цену уточню".to_string());
    format!("{} — {}{}", p.name, price, availability(&p.stock))
}

/// SPEC 7.4: the catalog matches for a product question.
pub fn offline_catalog_reply(matches: &[&Product]) -> String {
    let mut text = String::from("Вот что нашлось в нашем каталоге:\n");
    for p in matches.iter().take(3) {
        text.push_str("• ");
        text.push_str(&product_line(p));
        text.push('\n');
    }
    text.push_str("Менеджер скоро подключится и поможет с выбором и оформлением.");
    text
}

/// SPEC 7.4: the polite hand-off line.
pub const HANDOFF_REPLY: &str = "Спасибо за сообщение! Передаю ваш вопрос менеджеру — он скоро ответит.";

#[cfg(test)]
mod tests {
    use super::*;

    fn products() -> Vec<Product> {
        vec![
            Product {
                sku: "D-101".into(),
                name: "Диван угловой «Милан» 2×1,6 м".into(),
                price: "45990".into(),
                stock: "3".into(),
                ..Default::default()
            },
            Product {
                sku: "K-201".into(),
                name: "Кресло «Уют» рогожка".into(),
                price: "12990.5".into(),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn prices_are_read_with_markers_grouping_and_decimals() {
        assert_eq!(prices_in("Диван стоит 45 990 ₽, кресло 12 990,50 руб."), vec![45990.0, 12990.5]);
        assert_eq!(prices_in("цена 150,190.00 ₽"), vec![150190.0]);
        assert_eq!(prices_in("всего 1234.5 р."), vec![1234.5]);
        assert_eq!(prices_in("размер 160×200, 2 места, доставка 3 дня"), Vec::<f64>::new());
        assert_eq!(prices_in("артикул D-101"), Vec::<f64>::new());
        assert_eq!(prices_in("45\u{a0}990\u{a0}₽"), vec![45990.0]);
    }

    #[test]
    fn the_guard_accepts_catalog_prices_of_named_products() {
        let analyzer = Analyzer::default();
        let ok = "Диван «Милан» угловой стоит 45 990 ₽ — он есть в наличии.";
        assert!(unsupported_prices(ok, &products(), &analyzer).is_empty());
        let sku = "D-101 — 45 990 ₽";
        assert!(unsupported_prices(sku, &products(), &analyzer).is_empty());
    }

    #[test]
    fn the_guard_catches_made_up_prices_and_prices_of_unnamed_products() {
        let analyzer = Analyzer::default();
        assert_eq!(unsupported_prices("Диван «Милан» угловой — 39 990 ₽", &products(), &analyzer), vec![39990.0]);
        // The kreslo's price, but the reply names the sofa.
        assert_eq!(unsupported_prices("Угловой диван «Милан» за 12 990,50 ₽", &products(), &analyzer), vec![12990.5]);
        assert_eq!(unsupported_prices("Шкаф стоит 9 990 ₽", &products(), &analyzer), vec![9990.0]);
    }

    #[test]
    fn prices_are_formatted_the_russian_way() {
        assert_eq!(format_price(45990.0), "45 990 ₽");
        assert_eq!(format_price(1234.5), "1 234,50 ₽");
        assert_eq!(format_price(990.0), "990 ₽");
    }

    #[test]
    fn the_offline_reply_quotes_catalog_prices() {
        let products = products();
        let text = offline_catalog_reply(&[&products[0]]);
        assert!(text.contains("Диван угловой «Милан» 2×1,6 м — 45 990 ₽, в наличии"), "{text}");
    }
}
