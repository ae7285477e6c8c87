//! Catalog retrieval: a small in-memory index over the normalized catalog (sku, name,
//! category, description) with Russian stemming (Snowball), so «диван» finds «диваны»
//! and «дивана», and a one- or two-letter typo tolerance. Pure: no IO.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};
use serde::Serialize;

/// One catalog row, as the normalized CSV holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Product {
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub price: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub stock: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub description: String,
}

impl Product {
    pub fn price_value(&self) -> Option<f64> {
        self.price.trim().parse::<f64>().ok()
    }
}

/// Words that say nothing about which product is meant.
const STOPWORDS: &[&str] = &[
    "а",
    "без",
    "бы",
    "в",
    "вам",
    "вас",
    "во",
    "вот",
    "все",
    "всё",
    "да",
    "для",
    "до",
    "если",
    "есть",
    "еще",
    "ещё",
    "же",
    "за",
    "здравствуйте",
    "и",
    "из",
    "или",
    "им",
    "к",
    "как",
    "какая",
    "какие",
    "какой",
    "ко",
    "когда",
    "который",
    "ли",
    "лучше",
    "мне",
    "можно",
    "мой",
    "на",
    "нам",
    "нас",
    "не",
    "нет",
    "ну",
    "о",
    "об",
    "от",
    "по",
    "подскажите",
    "пожалуйста",
    "привет",
    "при",
    "про",
    "с",
    "сколько",
    "со",
    "спасибо",
    "стоит",
    "стоимость",
    "так",
    "там",
    "то",
    "у",
    "хочу",
    "цена",
    "цену",
    "что",
    "это",
    "я",
    "добрый",
    "день",
    "вечер",
    "утро",
    "интересует",
    "нужен",
    "нужна",
    "нужно",
    "нужны",
    "купить",
    "есть",
    "у вас",
    "ваш",
    "ваша",
    "ваши",
    "the",
    "a",
    "an",
    "of",
    "for",
    "and",
    "price",
];

/// Lowercased words and numbers: `ё`→`е`, `×`→`x`, letters split from digits so
/// `160x200` gives `160` and `200`.
pub fn words(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase().replace('ё', "е").replace('×', "x");
    let mut out = Vec::new();
    for raw in lowered.split(|c: char| !c.is_alphanumeric()) {
        let mut current = String::new();
        let mut digit_run: Option<bool> = None;
        for c in raw.chars() {
            let is_digit = c.is_ascii_digit();
            if digit_run.is_some_and(|d| d != is_digit) && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            digit_run = Some(is_digit);
            current.push(c);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out.retain(|w| w != "x");
    out
}

pub struct Analyzer {
    stemmer: Stemmer,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self { stemmer: Stemmer::create(Algorithm::Russian) }
    }
}

impl Analyzer {
    /// Stemmed, stopword-free terms of `text`.
    pub fn terms(&self, text: &str) -> Vec<String> {
        words(text)
            .into_iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .map(|w| if w.chars().all(|c| c.is_ascii_digit()) { w } else { self.stemmer.stem(&w).into_owned() })
            .filter(|w| !w.is_empty())
            .collect()
    }
}

pub struct CatalogIndex {
    products: Vec<Product>,
    /// term → (product index, weight): name and sku terms weigh more than the rest.
    postings: HashMap<String, Vec<(usize, u32)>>,
    analyzer: Analyzer,
}

/// A product and how well it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub product: &'a Product,
    pub score: u32,
}

impl CatalogIndex {
    pub fn build(products: Vec<Product>) -> Self {
        let analyzer = Analyzer::default();
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        for (idx, product) in products.iter().enumerate() {
            let mut weights: HashMap<String, u32> = HashMap::new();
            for (text, weight) in
                [(&product.name, 3), (&product.sku, 3), (&product.category, 1), (&product.description, 1)]
            {
                for term in analyzer.terms(text) {
                    let entry = weights.entry(term).or_default();
                    *entry = (*entry).max(weight);
                }
            }
            for (term, weight) in weights {
                postings.entry(term).or_default().push((idx, weight));
            }
        }
        Self { products, postings, analyzer }
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    pub fn products(&self) -> &[Product] {
        &self.products
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// Products matching the words of `query`, best first. Exact stems score their
    /// weight; a near spelling (typo) scores less; numbers must match exactly.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit<'_>> {
        let mut scores: HashMap<usize, u32> = HashMap::new();
        for term in self.analyzer.terms(query) {
            let mut matched = false;
            if let Some(list) = self.postings.get(&term) {
                matched = true;
                for &(idx, weight) in list {
                    *scores.entry(idx).or_default() += weight * 2;
                }
            }
            let numeric = term.chars().all(|c| c.is_ascii_digit());
            if matched || numeric || term.chars().count() < 4 {
                continue;
            }
            let max_distance = if term.chars().count() >= 8 { 2 } else { 1 };
            for (candidate, list) in &self.postings {
                if strsim::damerau_levenshtein(candidate, &term) <= max_distance {
                    for &(idx, weight) in list {
                        *scores.entry(idx).or_default() += weight;
                    }
                }
            }
        }
        let mut hits: Vec<Hit<'_>> =
            scores.into_iter().map(|(idx, score)| Hit { product: &self.products[idx], score }).collect();
        hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.product.name.cmp(&b.product.name)));
        // Keep hits close to the best one: a stray word should not drag in the catalog.
        if let Some(best) = hits.first().map(|h| h.score) {
            hits.retain(|h| h.score * 2 >= best);
        }
        hits.truncate(limit);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(sku: &str, name: &str, category: &str, price: &str) -> Product {
        Product {
            sku: sku.into(),
            name: name.into(),
            category: category.into(),
            price: price.into(),
            ..Product::default()
        }
    }

    fn index() -> CatalogIndex {
        CatalogIndex::build(vec![
            product("D-101", "Диван угловой «Милан» 2×1,6 м", "Диваны", "45990"),
            product("D-102", "Диван-кровать «Лофт»", "Диваны", "32990"),
            product("K-201", "Кресло «Уют» рогожка", "Кресла", "12990"),
            product("M-301", "Матрас ортопедический 160x200", "Матрасы", "18990"),
        ])
    }

    fn names(hits: &[Hit<'_>]) -> Vec<String> {
        hits.iter().map(|h| h.product.sku.clone()).collect()
    }

    #[test]
    fn word_forms_find_the_same_products() {
        let idx = index();
        for query in ["диван", "диваны", "дивана", "Есть ли у вас диваны?"] {
            let hits = names(&idx.search(query, 5));
            assert!(hits.contains(&"D-101".to_string()) && hits.contains(&"D-102".to_string()), "{query}: {hits:?}");
            assert!(!hits.contains(&"K-201".to_string()), "{query}: {hits:?}");
        }
        assert_eq!(names(&idx.search("креслом", 5)), ["K-201"]);
    }

    #[test]
    fn typos_and_the_multiplication_sign_are_tolerated() {
        let idx = index();
        assert_eq!(names(&idx.search("кресо", 5)), ["K-201"]);
        assert_eq!(names(&idx.search("матрац 160×200", 5)), ["M-301"]);
        assert_eq!(names(&idx.search("милан 2x1,6", 5))[0], "D-101");
    }

    #[test]
    fn small_talk_matches_nothing() {
        let idx = index();
        assert!(idx.search("Здравствуйте, сколько стоит?", 5).is_empty());
        assert!(idx.search("спасибо", 5).is_empty());
    }

    #[test]
    fn a_sku_finds_its_product() {
        assert_eq!(names(&index().search("m-301", 5)), ["M-301"]);
    }

    #[test]
    fn words_split_numbers_from_letters() {
        assert_eq!(words("Матрас 160×200, ёлка"), ["матрас", "160", "200", "елка"]);
    }
}
