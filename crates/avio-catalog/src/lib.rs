//! Pure catalog conversion: price lists as CSV, XLSX/XLS/ODS or PDF bytes in, normalized rows out.
//!
//! This crate does no IO of its own: callers hand it the bytes of an uploaded file and get
//! back [`Row`]s plus human-readable warnings, then write them with [`write_csv`]. Every
//! parser is bounded by [`Limits`] (pages, content operators, decompressed bytes, rows, line
//! length and a deadline), so a hostile file ends in a [`CatalogError`] with a reason instead
//! of exhausting memory or time, and no input makes it panic.
#![forbid(unsafe_code)]

mod csv_in;
mod pdf;
mod price;
mod sheet;
mod table;

use std::time::Instant;

pub use price::parse_price;

/// The normalized CSV header every conversion writes, in this order.
pub const HEADER: [&str; 9] = ["sku", "name", "category", "price", "currency", "unit", "stock", "url", "description"];

/// The kind of an uploaded file, decided by the caller from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Csv,
    Xlsx,
    Xls,
    Ods,
    Pdf,
}

impl SourceKind {
    /// Maps a file extension (with or without the dot, any case) to a kind.
    pub fn from_extension(ext: &str) -> Option<Self> {
        let ext = ext.trim().trim_start_matches('.').to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "txt" | "tsv" => Some(Self::Csv),
            // xlsm is the same container as xlsx; macros are never run, only cells read.
            "xlsx" | "xlsm" => Some(Self::Xlsx),
            "xls" => Some(Self::Xls),
            "ods" => Some(Self::Ods),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// The lowercase extension this kind stands for, as stored in job records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Xls => "xls",
            Self::Ods => "ods",
            Self::Pdf => "pdf",
        }
    }
}

/// One product line of the normalized catalog; a column the source lacks stays empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub sku: String,
    pub name: String,
    pub category: String,
    /// A plain decimal with '.' and no grouping, e.g. "1234.5"; empty when unknown.
    pub price: String,
    /// ISO code ("RUB", "USD", "EUR"); empty when there is no price.
    pub currency: String,
    pub unit: String,
    pub stock: String,
    pub url: String,
    pub description: String,
}

impl Row {
    /// The fields in [`HEADER`] order.
    pub fn fields(&self) -> [&str; 9] {
        [
            &self.sku,
            &self.name,
            &self.category,
            &self.price,
            &self.currency,
            &self.unit,
            &self.stock,
            &self.url,
            &self.description,
        ]
    }
}

/// Bounds that keep one conversion within predictable time and memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// PDF pages read; a longer document fails rather than being cut silently.
    pub max_pdf_pages: usize,
    /// Content-stream operators interpreted over the whole PDF (forms included).
    pub max_ops: usize,
    /// Bytes any decompression may produce: a PDF page's content, the whole XLSX/ODS archive.
    pub max_decompressed_bytes: u64,
    /// Product rows produced (and CSV/sheet rows read).
    pub max_rows: usize,
    /// Longest CSV line accepted, so one giant line fails fast.
    pub max_line_bytes: usize,
    /// When set, the conversion gives up with [`CatalogError::Timeout`] after this instant.
    pub deadline: Option<Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pdf_pages: 500,
            max_ops: 20_000_000,
            max_decompressed_bytes: 256 * 1024 * 1024,
            max_rows: 200_000,
            max_line_bytes: 1024 * 1024,
            deadline: None,
        }
    }
}

impl Limits {
    /// Fails once the deadline has passed; parsers call it inside their loops.
    pub(crate) fn check_deadline(&self) -> Result<(), CatalogError> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(CatalogError::Timeout),
            _ => Ok(()),
        }
    }
}

/// The result of one conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub rows: Vec<Row>,
    /// Things a person should know about (skipped sheets, undecodable pages, truncation).
    pub warnings: Vec<String>,
    /// Which converter produced the rows: "csv", "calamine" or "pdf-text-layout".
    pub pipeline: &'static str,
}

/// Why a conversion failed; each variant carries a reason that can be shown to a person.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The bytes are not a readable file of the claimed kind (truncated, broken structure).
    #[error("the file is damaged or not a valid {0}")]
    Corrupt(String),
    /// The file is readable but uses something we do not handle (encryption, HTML named .xls).
    #[error("unsupported file: {0}")]
    Unsupported(String),
    /// The file exceeds one of the [`Limits`] (pages, operators, decompressed size, line length).
    #[error("the file is too large: {0}")]
    TooLarge(String),
    /// The file was read but no product table was found in it.
    #[error("no product table found: {0}")]
    NoTable(String),
    /// The deadline in [`Limits`] passed before the conversion finished.
    #[error("the conversion took too long and was stopped")]
    Timeout,
}

/// Converts the bytes of one price list into normalized rows.
pub fn convert(bytes: &[u8], kind: SourceKind, limits: &Limits) -> Result<Conversion, CatalogError> {
    if bytes.is_empty() {
        return Err(CatalogError::Corrupt(format!("{} file: it is empty", kind.as_str())));
    }
    limits.check_deadline()?;
    let mut conversion = match kind {
        SourceKind::Csv => csv_in::convert(bytes, limits)?,
        SourceKind::Xlsx | SourceKind::Xls | SourceKind::Ods => sheet::convert(bytes, kind, limits)?,
        SourceKind::Pdf => pdf::convert(bytes, limits)?,
    };
    if conversion.rows.is_empty() {
        return Err(CatalogError::NoTable("a header row was found but no product rows below it".to_string()));
    }
    if conversion.rows.iter().all(|row| row.price.is_empty()) {
        conversion.warnings.push("no row has a readable price".to_string());
    }
    Ok(conversion)
}

/// Writes rows as UTF-8 CSV with the [`HEADER`] first and RFC 4180 quoting.
pub fn write_csv<W: std::io::Write>(rows: &[Row], out: W) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(out);
    writer.write_record(HEADER).map_err(csv_to_io)?;
    for row in rows {
        writer.write_record(row.fields()).map_err(csv_to_io)?;
    }
    writer.flush()
}

fn csv_to_io(error: csv::Error) -> std::io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Runs a third-party parser so that a panic inside it becomes a `Corrupt` error.
///
/// Our own code does not panic on input, but lopdf and calamine are large; a bug there must
/// fail one job, not take down the daemon's worker thread.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, CatalogError>) -> Result<T, CatalogError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(CatalogError::Corrupt(format!("{what}: the parser hit an internal error on this file"))),
    }
}
