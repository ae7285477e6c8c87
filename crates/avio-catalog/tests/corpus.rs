//! Cell accuracy of every converter on the generated corpus (tests/catalog_corpus at the repo root).
//!
//! Each fixture renders the same ground truth (truth.csv) a different way; rows are matched by
//! SKU and sku, name and price cells are scored. The bar is 99 % on every generator.

use std::collections::HashMap;
use std::path::PathBuf;

use avio_catalog::{Limits, Row, SourceKind, convert};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/catalog_corpus/fixtures")
}

fn read_truth() -> Vec<Row> {
    let mut reader = csv::Reader::from_path(fixtures().join("truth.csv")).expect("truth.csv");
    reader
        .records()
        .map(|r| {
            let r = r.expect("truth record");
            let get = |i: usize| r.get(i).unwrap_or("").to_string();
            Row {
                sku: get(0),
                name: get(1),
                category: get(2),
                price: get(3),
                currency: get(4),
                unit: get(5),
                stock: get(6),
                url: get(7),
                description: get(8),
            }
        })
        .collect()
}

fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Score {
    generator: &'static str,
    truth_rows: usize,
    produced: usize,
    sku: usize,
    name: usize,
    price: usize,
    category: usize,
    extra: usize,
    seconds: f64,
}

impl Score {
    fn pct(&self, n: usize) -> f64 {
        100.0 * n as f64 / self.truth_rows.max(1) as f64
    }
}

fn score(generator: &'static str, file: &str, kind: SourceKind, name_map: fn(&str) -> String) -> Score {
    let truth = read_truth();
    let bytes = std::fs::read(fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let started = std::time::Instant::now();
    let conversion = convert(&bytes, kind, &Limits::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let seconds = started.elapsed().as_secs_f64();
    let by_sku: HashMap<&str, &Row> = conversion.rows.iter().map(|r| (r.sku.as_str(), r)).collect();
    let mut s = Score {
        generator,
        truth_rows: truth.len(),
        produced: conversion.rows.len(),
        sku: 0,
        name: 0,
        price: 0,
        category: 0,
        extra: 0,
        seconds,
    };
    let mut misses = Vec::new();
    for expected in &truth {
        let Some(got) = by_sku.get(expected.sku.as_str()) else {
            misses.push(format!("missing sku {}", expected.sku));
            continue;
        };
        s.sku += 1;
        if fold(&got.name) == fold(&name_map(&expected.name)) {
            s.name += 1;
        } else {
            misses.push(format!("name {:?} != {:?}", got.name, expected.name));
        }
        if got.price == expected.price && got.currency == "RUB" {
            s.price += 1;
        } else {
            misses.push(format!("price {} {} != {} ({})", got.price, got.currency, expected.price, expected.sku));
        }
        if got.category == expected.category {
            s.category += 1;
        }
    }
    let truth_skus: std::collections::HashSet<&str> = truth.iter().map(|r| r.sku.as_str()).collect();
    for row in &conversion.rows {
        if !truth_skus.contains(row.sku.as_str()) {
            s.extra += 1;
            misses.push(format!("extra row {row:?}"));
        }
    }
    for miss in misses.iter().take(15) {
        eprintln!("{generator}: {miss}");
    }
    s
}

fn same(name: &str) -> String {
    name.to_string()
}

/// Windows-1251 has no "×", so the 1C-style export writes a Latin "x".
fn cp1251(name: &str) -> String {
    name.replace('×', "x")
}

/// Generator label, fixture file, kind, and how the truth name reads in that format.
type Case = (&'static str, &'static str, SourceKind, fn(&str) -> String);

#[test]
fn every_generator_reaches_99_percent_cell_accuracy() {
    let cases: [Case; 7] = [
        ("xlsx (openpyxl)", "price.xlsx", SourceKind::Xlsx, same),
        ("xls (LibreOffice)", "price.xls", SourceKind::Xls, same),
        ("ods (LibreOffice)", "price.ods", SourceKind::Ods, same),
        ("pdf LibreOffice", "price_libreoffice.pdf", SourceKind::Pdf, same),
        ("pdf reportlab", "price_reportlab.pdf", SourceKind::Pdf, same),
        ("pdf Chromium", "price_chromium.pdf", SourceKind::Pdf, same),
        ("csv 1C cp1251", "price_1c.csv", SourceKind::Csv, cp1251),
    ];
    let scores: Vec<Score> = cases.iter().map(|(g, f, k, m)| score(g, f, *k, *m)).collect();
    println!(
        "{:<20} {:>6} {:>6} {:>8} {:>8} {:>8} {:>9} {:>6} {:>8}",
        "generator", "truth", "rows", "sku %", "name %", "price %", "category %", "extra", "seconds"
    );
    for s in &scores {
        println!(
            "{:<20} {:>6} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>6} {:>8.3}",
            s.generator,
            s.truth_rows,
            s.produced,
            s.pct(s.sku),
            s.pct(s.name),
            s.pct(s.price),
            s.pct(s.category),
            s.extra,
            s.seconds
        );
    }
    for s in &scores {
        let cells = s.pct(s.sku + s.name + s.price) / 3.0;
        assert!(
            s.pct(s.sku) >= 99.0 && s.pct(s.name) >= 99.0 && s.pct(s.price) >= 99.0,
            "{}: sku {:.2} % name {:.2} % price {:.2} % (cells {cells:.2} %)",
            s.generator,
            s.pct(s.sku),
            s.pct(s.name),
            s.pct(s.price)
        );
        assert!(s.extra * 100 <= s.truth_rows, "{}: {} rows that are not in the truth", s.generator, s.extra);
    }
}
