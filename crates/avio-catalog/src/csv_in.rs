//! CSV price lists (1C exports and the like): encoding and delimiter detection, then the table step.

use crate::table::{TableBuilder, find_header};
use crate::{CatalogError, Conversion, Limits};

/// How many leading rows may hold a title before the header.
const HEADER_SEARCH_ROWS: usize = 50;

pub(crate) fn convert(bytes: &[u8], limits: &Limits) -> Result<Conversion, CatalogError> {
    check_line_lengths(bytes, limits.max_line_bytes)?;
    let mut warnings = Vec::new();
    let (text, encoding) = decode(bytes);
    if encoding != "UTF-8" {
        warnings.push(format!("read as {encoding}"));
    }
    if text.contains('\0') {
        return Err(CatalogError::Corrupt("CSV: it contains binary data (NUL bytes)".to_string()));
    }
    let delimiter = sniff_delimiter(&text);
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut grid: Vec<Vec<String>> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                return Err(CatalogError::Corrupt(format!("CSV: {error}")));
            }
        }
        if grid.len() >= limits.max_rows.saturating_add(HEADER_SEARCH_ROWS) {
            return Err(CatalogError::TooLarge(format!("more than {} rows", limits.max_rows)));
        }
        if grid.len().is_multiple_of(4096) {
            limits.check_deadline()?;
        }
        grid.push(record.iter().map(|s| s.to_string()).collect());
    }
    let (header_idx, map) = find_header(&grid, HEADER_SEARCH_ROWS).ok_or_else(|| {
        CatalogError::NoTable("no header row with column names such as Артикул, Наименование, Цена".to_string())
    })?;
    let header = grid.get(header_idx).cloned().unwrap_or_default();
    let mut builder = TableBuilder::new(&header, map, limits);
    for cells in grid.iter().skip(header_idx + 1) {
        builder.push_cells(cells)?;
    }
    Ok(Conversion { rows: builder.rows, warnings, pipeline: "csv" })
}

/// Rejects a file with an over-long line before anything is decoded or allocated for it.
fn check_line_lengths(bytes: &[u8], max_line_bytes: usize) -> Result<(), CatalogError> {
    let longest = bytes.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap_or(0);
    if longest > max_line_bytes {
        return Err(CatalogError::TooLarge(format!(
            "a CSV line is {longest} bytes long, more than the {max_line_bytes} allowed"
        )));
    }
    Ok(())
}

/// UTF-8 (with or without BOM) or UTF-16 with BOM when valid, else Windows-1251 as 1C writes it.
pub(crate) fn decode(bytes: &[u8]) -> (String, &'static str) {
    if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let body = bytes.get(bom_len..).unwrap_or_default();
        let (text, _) = encoding.decode_without_bom_handling(body);
        return (text.into_owned(), encoding.name());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), "UTF-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1251.decode(bytes);
            (text.into_owned(), "windows-1251")
        }
    }
}

/// Picks `;`, `,` or tab: the one that splits the first lines most consistently.
pub(crate) fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(30).collect();
    let mut best = (b';', 0usize);
    for delimiter in [b';', b'\t', b','] {
        let counts: Vec<usize> = lines.iter().map(|line| count_outside_quotes(line, delimiter)).collect();
        // The most common non-zero count, weighted by how many lines share it: titles and
        // free text above the table disagree, the table rows agree.
        let mut score = 0;
        for &count in counts.iter().filter(|c| **c > 0) {
            let agreeing = counts.iter().filter(|c| **c == count).count();
            score = score.max(agreeing * 100 + count.min(99));
        }
        if score > best.1 {
            best = (delimiter, score);
        }
    }
    best.0
}

fn count_outside_quotes(line: &str, delimiter: u8) -> usize {
    let mut in_quotes = false;
    let mut count = 0;
    for byte in line.bytes() {
        if byte == b'"' {
            in_quotes = !in_quotes;
        } else if byte == delimiter && !in_quotes {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("Артикул;Номенклатура;Цена\nA;Стул;12990,00\n", b';')]
    #[case("sku,name,price\nA,Chair,\"1,299.00\"\n", b',')]
    #[case("sku\tname\tprice\nA\tChair\t10\n", b'\t')]
    #[case("Прайс, май 2024\nАртикул;Наименование, цвет;Цена\nA;Стул, белый;12990,00\nB;Стол;500\n", b';')]
    fn delimiter_is_sniffed(#[case] text: &str, #[case] expected: u8) {
        assert_eq!(sniff_delimiter(text) as char, expected as char);
    }

    #[test]
    fn cp1251_and_bom_are_decoded() {
        let (cp, _, _) = encoding_rs::WINDOWS_1251.encode("Цена;Товар");
        assert_eq!(decode(&cp), ("Цена;Товар".to_string(), "windows-1251"));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice("Цена".as_bytes());
        assert_eq!(decode(&bom).0, "Цена");
    }

    #[test]
    fn one_c_export_converts() {
        let text =
            "Прайс-лист\n\nАртикул;Номенклатура;Ед.;Цена;Количество\nМебель\nA-1;Стул «Венский»;шт;1 299,50;12\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        let conversion = convert(&bytes, &Limits::default()).unwrap();
        assert_eq!(conversion.rows.len(), 1);
        let row = &conversion.rows[0];
        assert_eq!(row.sku, "A-1");
        assert_eq!(row.name, "Стул «Венский»");
        assert_eq!(row.category, "Мебель");
        assert_eq!(row.price, "1299.5");
        assert_eq!(row.unit, "шт");
        assert_eq!(row.stock, "12");
    }
}
