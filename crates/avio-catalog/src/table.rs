//! Header detection by Russian/English synonyms and the grid-to-rows step shared by all formats.
//!
//! Each converter turns its source into rows of cell strings; this module finds the header
//! row, maps columns to [`Field`]s, turns category rows into the category of the products
//! below them, and normalizes prices. It knows nothing about files.

use crate::price::{explicit_currency, fold_spaces, parse_price};
use crate::{CatalogError, Limits, Row};

/// A column of the normalized catalog that a source column can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    Sku,
    Name,
    Category,
    Price,
    Currency,
    Unit,
    Stock,
    Url,
    Description,
}

/// Header synonyms in normalized form (lowercase, ё→е, punctuation as spaces, hyphens kept).
/// Order matters: the first field whose synonym starts the cell wins.
const SYNONYMS: &[(Field, &[&str])] = &[
    (Field::Price, &["цена", "стоимость", "розничная цена", "оптовая цена", "price", "cost"]),
    (Field::Sku, &["артикул", "арт", "код", "sku", "article", "art", "vendor code", "part number", "item code"]),
    (
        Field::Name,
        &[
            "наименование",
            "наим",
            "товар",
            "номенклатура",
            "название",
            "продукт",
            "модель",
            "name",
            "product",
            "item",
            "title",
        ],
    ),
    (Field::Category, &["категория", "группа", "раздел", "category", "group", "section"]),
    (Field::Unit, &["ед изм", "ед", "единица", "единицы", "unit", "uom"]),
    (
        Field::Stock,
        &[
            "остаток",
            "остатки",
            "наличие",
            "в наличии",
            "количество",
            "кол-во",
            "колво",
            "кол",
            "склад",
            "stock",
            "qty",
            "quantity",
            "available",
        ],
    ),
    (Field::Description, &["описание", "характеристики", "description", "details"]),
    (Field::Url, &["ссылка", "url", "link", "сайт", "web"]),
    (Field::Currency, &["валюта", "currency"]),
];

/// Lowercases, folds ё, turns punctuation into spaces (keeping hyphens) and folds spaces.
pub(crate) fn normalize_label(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| match c {
            'ё' | 'Ё' => 'е',
            '-' => '-',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect::<String>()
        .to_lowercase();
    fold_spaces(&mapped)
}

/// The field a header cell names, if any.
pub(crate) fn classify_header(cell: &str) -> Option<Field> {
    // Header cells are short; a long sentence that starts with "Цена" is a note, not a header.
    if cell.chars().count() > 40 {
        return None;
    }
    let label = normalize_label(cell);
    if label.is_empty() {
        return None;
    }
    for (field, synonyms) in SYNONYMS {
        for synonym in *synonyms {
            if let Some(rest) = label.strip_prefix(synonym)
                && (rest.is_empty() || rest.starts_with(' '))
            {
                return Some(*field);
            }
        }
    }
    None
}

/// Maps each column of a candidate header row to a field, keeping the first of duplicates.
pub(crate) fn map_header(cells: &[String]) -> Vec<Option<Field>> {
    let mut seen: Vec<Field> = Vec::new();
    cells
        .iter()
        .map(|cell| {
            let field = classify_header(cell)?;
            if seen.contains(&field) {
                return None;
            }
            seen.push(field);
            Some(field)
        })
        .collect()
}

/// Whether a mapped row is a plausible table header.
pub(crate) fn is_header(map: &[Option<Field>]) -> bool {
    let has = |f: Field| map.contains(&Some(f));
    let distinct = map.iter().flatten().count();
    (has(Field::Name) && distinct >= 2) || (has(Field::Sku) && has(Field::Price))
}

/// Finds the header among the first `search_rows` rows.
pub(crate) fn find_header(grid: &[Vec<String>], search_rows: usize) -> Option<(usize, Vec<Option<Field>>)> {
    grid.iter().take(search_rows).enumerate().find_map(|(idx, cells)| {
        let map = map_header(cells);
        is_header(&map).then_some((idx, map))
    })
}

/// Accumulates product rows under a known header, tracking the current category.
pub(crate) struct TableBuilder {
    map: Vec<Option<Field>>,
    header_currency: Option<&'static str>,
    category: String,
    /// A category for rows that precede any category row, e.g. the sheet name.
    default_category: String,
    pub(crate) rows: Vec<Row>,
    max_rows: usize,
}

impl TableBuilder {
    pub(crate) fn new(header_cells: &[String], map: Vec<Option<Field>>, limits: &Limits) -> Self {
        let header_currency = header_cells
            .iter()
            .zip(&map)
            .find(|(_, field)| **field == Some(Field::Price))
            .and_then(|(cell, _)| explicit_currency(cell));
        Self {
            map,
            header_currency,
            category: String::new(),
            default_category: String::new(),
            rows: Vec::new(),
            max_rows: limits.max_rows,
        }
    }

    pub(crate) fn set_default_category(&mut self, category: &str) {
        self.default_category = fold_spaces(category);
        self.category.clear();
    }

    pub(crate) fn set_category(&mut self, category: &str) {
        self.category = fold_spaces(category);
    }

    fn cell<'a>(&self, cells: &'a [String], field: Field) -> &'a str {
        self.map.iter().position(|f| *f == Some(field)).and_then(|idx| cells.get(idx)).map(|s| s.as_str()).unwrap_or("")
    }

    /// Takes one row of cells from a sheet or CSV: a product, a category label, a repeated
    /// header or noise.
    pub(crate) fn push_cells(&mut self, cells: &[String]) -> Result<(), CatalogError> {
        let mut distinct: Vec<String> = Vec::new();
        for cell in cells {
            let folded = fold_spaces(cell);
            if !folded.is_empty() && !distinct.contains(&folded) {
                distinct.push(folded);
            }
        }
        if distinct.is_empty() {
            return Ok(());
        }
        if is_header(&map_header(cells)) {
            return Ok(());
        }
        let price = parse_price(self.cell(cells, Field::Price));
        if price.is_none() && distinct.len() == 1 {
            // One label spanning the row (or a merged cell filled across it) names a category,
            // even when it sits in the SKU column as 1C and Excel lists put it.
            if let Some(label) = distinct.first() {
                self.category = label.clone();
            }
            return Ok(());
        }
        self.push_product(cells)
    }

    /// Adds a product row from cells laid out as the header map says.
    pub(crate) fn push_product(&mut self, cells: &[String]) -> Result<(), CatalogError> {
        let sku = fold_spaces(self.cell(cells, Field::Sku));
        let name = fold_spaces(self.cell(cells, Field::Name));
        if sku.is_empty() && name.is_empty() {
            return Ok(());
        }
        if self.rows.len() >= self.max_rows {
            return Err(CatalogError::TooLarge(format!("more than {} product rows", self.max_rows)));
        }
        let price_text = self.cell(cells, Field::Price);
        let price = parse_price(price_text).unwrap_or_default();
        let currency = if price.is_empty() {
            String::new()
        } else {
            explicit_currency(price_text)
                .or_else(|| explicit_currency(self.cell(cells, Field::Currency)))
                .or(self.header_currency)
                .unwrap_or("RUB")
                .to_string()
        };
        let own_category = fold_spaces(self.cell(cells, Field::Category));
        let category = if !own_category.is_empty() {
            own_category
        } else if !self.category.is_empty() {
            self.category.clone()
        } else {
            self.default_category.clone()
        };
        self.rows.push(Row {
            sku,
            name,
            category,
            price,
            currency,
            unit: fold_spaces(self.cell(cells, Field::Unit)),
            stock: normalize_stock(self.cell(cells, Field::Stock)),
            url: fold_spaces(self.cell(cells, Field::Url)),
            description: fold_spaces(self.cell(cells, Field::Description)),
        });
        Ok(())
    }
}

/// Stock counts lose grouping spaces ("1 200" → "1200"); words ("в наличии") stay as written.
fn normalize_stock(text: &str) -> String {
    let folded = fold_spaces(text);
    match parse_price(&folded) {
        Some(number) if folded.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == ',' || c == '.') => number,
        _ => folded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("Артикул", Some(Field::Sku))]
    #[case("Код товара", Some(Field::Sku))]
    #[case("SKU", Some(Field::Sku))]
    #[case("Наименование", Some(Field::Name))]
    #[case("Наименование товара", Some(Field::Name))]
    #[case("Номенклатура", Some(Field::Name))]
    #[case("Товар", Some(Field::Name))]
    #[case("Категория", Some(Field::Category))]
    #[case("Группа товаров", Some(Field::Category))]
    #[case("Цена, руб.", Some(Field::Price))]
    #[case("Цена", Some(Field::Price))]
    #[case("Стоимость", Some(Field::Price))]
    #[case("Ед. изм.", Some(Field::Unit))]
    #[case("Ед.", Some(Field::Unit))]
    #[case("Остаток", Some(Field::Stock))]
    #[case("Кол-во", Some(Field::Stock))]
    #[case("Наличие", Some(Field::Stock))]
    #[case("Описание", Some(Field::Description))]
    #[case("Ссылка", Some(Field::Url))]
    #[case("URL", Some(Field::Url))]
    #[case("Штрихкод", None)]
    #[case("№", None)]
    #[case("Цены указаны с НДС", None)]
    #[case("Прайс-лист ООО «Мебельный двор»", None)]
    fn header_cells_are_classified(#[case] cell: &str, #[case] expected: Option<Field>) {
        assert_eq!(classify_header(cell), expected, "cell {cell:?}");
    }

    fn grid(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
    }

    #[test]
    fn header_is_found_below_title_rows() {
        let g = grid(&[
            &["Прайс-лист ООО «Ромашка»", "", ""],
            &["Цены указаны с НДС", "", ""],
            &["", "", ""],
            &["Артикул", "Наименование", "Цена, руб."],
            &["A-1", "Стул", "1 000"],
        ]);
        let (idx, map) = find_header(&g, 30).unwrap();
        assert_eq!(idx, 3);
        assert_eq!(map, vec![Some(Field::Sku), Some(Field::Name), Some(Field::Price)]);
    }

    #[test]
    fn title_rows_alone_are_not_a_header() {
        let g = grid(&[&["Прайс-лист", "Товары"], &["Стул", "100"]]);
        assert!(find_header(&g, 30).is_none());
    }

    #[test]
    fn category_rows_label_products_below() {
        let g = grid(&[
            &["Артикул", "Наименование", "Цена"],
            &["Диваны", "", ""],
            &["D-1", "Диван «Лего» 2×1,6 м", "12 990,50 ₽"],
            &["Кресла", "Кресла", "Кресла"],
            &["K-1", "Кресло", "5000"],
            &["Артикул", "Наименование", "Цена"],
            &["K-2", "Кресло  2", "$10"],
        ]);
        let (idx, map) = find_header(&g, 30).unwrap();
        let mut builder = TableBuilder::new(&g[idx], map, &Limits::default());
        for cells in &g[idx + 1..] {
            builder.push_cells(cells).unwrap();
        }
        let rows = builder.rows;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].category, "Диваны");
        assert_eq!(rows[0].name, "Диван «Лего» 2×1,6 м");
        assert_eq!(rows[0].price, "12990.5");
        assert_eq!(rows[0].currency, "RUB");
        assert_eq!(rows[1].category, "Кресла");
        assert_eq!(rows[2].name, "Кресло 2");
        assert_eq!(rows[2].currency, "USD");
    }
}
