//! PDF price lists: lopdf parses objects, our interpreter positions glyphs, layout rebuilds the table.

mod font;
mod interp;
mod layout;
mod obj;

use lopdf::{Document, LoadOptions};

use crate::table::TableBuilder;
use crate::{CatalogError, Conversion, Limits, guard};
use interp::Interpreter;
use layout::{PageLines, Record, build_lines, extract_table};

/// Share of a page's characters that may be undecodable before we call the page unreadable.
const UNREADABLE_SHARE: f64 = 0.3;

pub(crate) fn convert(bytes: &[u8], limits: &Limits) -> Result<Conversion, CatalogError> {
    if !bytes.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Err(CatalogError::Corrupt("PDF file: the %PDF header is missing".to_string()));
    }
    guard("PDF", || convert_inner(bytes, limits))
}

fn convert_inner(bytes: &[u8], limits: &Limits) -> Result<Conversion, CatalogError> {
    let max_stream = usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    let options = LoadOptions { max_decompressed_size: Some(max_stream), ..LoadOptions::default() };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|error| match error {
        lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. }) => CatalogError::TooLarge(
            format!("a PDF stream decompresses to more than {} bytes", limits.max_decompressed_bytes),
        ),
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => {
            CatalogError::Unsupported("the PDF is password-protected".to_string())
        }
        other => CatalogError::Corrupt(format!("PDF file ({other})")),
    })?;
    limits.check_deadline()?;
    if doc.is_encrypted() {
        return Err(CatalogError::Unsupported("the PDF is password-protected".to_string()));
    }
    let page_ids: Vec<_> = doc.get_pages().into_values().collect();
    if page_ids.is_empty() {
        return Err(CatalogError::Corrupt("PDF file: it has no pages".to_string()));
    }
    if page_ids.len() > limits.max_pdf_pages {
        return Err(CatalogError::TooLarge(format!(
            "the PDF has {} pages, more than the {} allowed",
            page_ids.len(),
            limits.max_pdf_pages
        )));
    }
    let mut warnings = Vec::new();
    let mut interpreter = Interpreter::new(&doc, limits);
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut total_glyphs = 0usize;
    let mut unreadable_pages = 0usize;
    for (page_no, page_id) in page_ids.iter().enumerate() {
        limits.check_deadline()?;
        let text = interpreter.run_page(*page_id)?;
        let total = text.glyphs.len() + text.unreadable;
        if total >= 20 && text.unreadable as f64 > UNREADABLE_SHARE * total as f64 {
            unreadable_pages += 1;
            warnings.push(format!(
                "page {}: {} of {} characters cannot be decoded (a font without a usable ToUnicode map); its text is ignored",
                page_no + 1,
                text.unreadable,
                total
            ));
            pages.push(PageLines { lines: Vec::new(), rules: Vec::new() });
            continue;
        }
        if text.broken_streams > 0 {
            warnings.push(format!("page {}: part of the page content is damaged and was skipped", page_no + 1));
        }
        total_glyphs += text.glyphs.len();
        pages.push(PageLines { lines: build_lines(&text.glyphs), rules: text.rules });
    }
    if total_glyphs == 0 {
        return Err(CatalogError::NoTable(if unreadable_pages > 0 {
            "the PDF's text cannot be decoded (fonts without ToUnicode maps)".to_string()
        } else {
            "the PDF has no text layer (a scan?); scanned price lists are not supported".to_string()
        }));
    }
    let table = extract_table(&pages).ok_or_else(|| {
        CatalogError::NoTable(
            "no header row with column names such as Артикул, Наименование, Цена in the PDF text".to_string(),
        )
    })?;
    let mut builder = TableBuilder::new(&table.header, table.fields, limits);
    for record in &table.records {
        match record {
            Record::Category(text) => builder.set_category(text),
            Record::Product(cells) => builder.push_product(cells)?,
        }
    }
    Ok(Conversion { rows: builder.rows, warnings, pipeline: "pdf-text-layout" })
}
