//! Upload file names: the accepted extensions and a sanitizer whose output cannot leave
//! the tenant's `uploads/` folder. Pure: no IO.

use avio_catalog::SourceKind;

/// Extensions SPEC 8 accepts for upload, lowercase and without the dot.
pub const ALLOWED_EXTENSIONS: [&str; 5] = ["pdf", "csv", "xlsx", "xls", "ods"];

/// The stem used when nothing printable survives sanitizing.
pub const FALLBACK_STEM: &str = "catalog";

// Long enough for real price-list names, short enough to stay far below NAME_MAX (255
// bytes) even when every character is two-byte Cyrillic.
const MAX_STEM_CHARS: usize = 100;
const MAX_ORIGINAL_CHARS: usize = 255;

/// An uploaded file's name, split into what is shown and what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadName {
    /// The client's name for display: its last path component, invisible characters removed.
    pub original: String,
    /// Letters of any script, digits, `-` and `_` only; never empty, never `.`/`..`.
    pub stem: String,
    /// Lowercase ASCII extension without the dot; empty when the name had none.
    pub ext: String,
}

impl UploadName {
    /// Sanitizes a name as sent in a multipart `filename`, from any OS: directories
    /// (`/` or `\`), `..`, control and bidi-override characters are dropped.
    pub fn parse(raw: &str) -> UploadName {
        let visible: String = raw.chars().filter(|c| !is_invisible(*c)).collect();
        let last = visible.rsplit(['/', '\\']).next().unwrap_or("").trim();
        let original: String = last.chars().take(MAX_ORIGINAL_CHARS).collect();
        let (stem_part, ext_part) = match last.rsplit_once('.') {
            Some((stem, ext)) => (stem, ext),
            None => (last, ""),
        };
        let ext = if !ext_part.is_empty() && ext_part.len() <= 8 && ext_part.chars().all(|c| c.is_ascii_alphanumeric())
        {
            ext_part.to_ascii_lowercase()
        } else {
            String::new()
        };
        UploadName { original, stem: safe_stem(stem_part), ext }
    }

    /// The converter for this name, when its extension is one SPEC 8 accepts.
    pub fn kind(&self) -> Option<SourceKind> {
        if ALLOWED_EXTENSIONS.contains(&self.ext.as_str()) { SourceKind::from_extension(&self.ext) } else { None }
    }

    /// `<stem>.<ext>`: the name under `uploads/`.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.stem, self.ext)
    }
}

/// The media type recorded for a kind: from the extension, because the client's
/// `Content-Type` for spreadsheets is often `application/octet-stream` or wrong.
pub fn mime_for(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Pdf => "application/pdf",
        SourceKind::Csv => "text/csv",
        SourceKind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        SourceKind::Xls => "application/vnd.ms-excel",
        SourceKind::Ods => "application/vnd.oasis.opendocument.spreadsheet",
    }
}

/// Control characters plus the zero-width and bidi-override marks that can make a
/// name display differently from what is stored (`price\u{202E}fdp.exe`).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn safe_stem(raw: &str) -> String {
    let mut stem = String::new();
    for c in raw.chars() {
        // Combining marks stay: macOS browsers send "й" decomposed as "и" + U+0306.
        let keep = c.is_alphanumeric() || c == '-' || c == '_' || ('\u{0300}'..='\u{036F}').contains(&c);
        let c = if keep { c } else { '_' };
        if c == '_' && stem.ends_with('_') {
            continue;
        }
        stem.push(c);
    }
    let trimmed: String = stem.trim_matches(['_', '-']).chars().take(MAX_STEM_CHARS).collect();
    let trimmed = trimmed.trim_end_matches(['_', '-']);
    if trimmed.is_empty() { FALLBACK_STEM.to_string() } else { trimmed.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_into_the_uploads_folder() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // raw, original, stem, ext
            ("price.xlsx", "price.xlsx", "price", "xlsx"),
            ("Прайс 2024 (новый).PDF", "Прайс 2024 (новый).PDF", "Прайс_2024_новый", "pdf"),
            ("../../x.csv", "x.csv", "x", "csv"),
            ("..\\a.pdf", "a.pdf", "a", "pdf"),
            ("..\\\\a.pdf", "a.pdf", "a", "pdf"),
            ("C:\\Users\\me\\Desktop\\прайс.xls", "прайс.xls", "прайс", "xls"),
            ("/etc/passwd", "passwd", "passwd", ""),
            ("..", "..", FALLBACK_STEM, ""),
            ("../.csv", ".csv", FALLBACK_STEM, "csv"),
            ("...csv", "...csv", FALLBACK_STEM, "csv"),
            ("a\u{0}b\r\n.ods", "ab.ods", "ab", "ods"),
            ("evil\u{202E}fdp.csv", "evilfdp.csv", "evilfdp", "csv"),
            ("price.tar.gz", "price.tar.gz", "price_tar", "gz"),
            ("-rf.csv", "-rf.csv", "rf", "csv"),
            ("", "", FALLBACK_STEM, ""),
            ("И\u{0306}кра.csv", "И\u{0306}кра.csv", "И\u{0306}кра", "csv"),
        ];
        for (raw, original, stem, ext) in cases {
            let name = UploadName::parse(raw);
            assert_eq!(
                (name.original.as_str(), name.stem.as_str(), name.ext.as_str()),
                (*original, *stem, *ext),
                "{raw:?}"
            );
            assert!(!name.file_name().contains('/') && !name.file_name().contains('\\'));
            assert!(!name.stem.starts_with('.'));
        }
    }

    #[test]
    fn long_names_are_cut_below_the_filesystem_limit() {
        let name = UploadName::parse(&format!("{}.csv", "ж".repeat(1000)));
        assert_eq!(name.stem.chars().count(), 100);
        assert!(name.file_name().len() < 255);
    }

    #[test]
    fn only_the_spec_extensions_have_a_kind() {
        for ext in ALLOWED_EXTENSIONS {
            assert!(UploadName::parse(&format!("a.{ext}")).kind().is_some(), "{ext}");
        }
        for raw in ["a.txt", "a.xlsm", "a.exe", "a", "a.pdf.exe"] {
            assert!(UploadName::parse(raw).kind().is_none(), "{raw}");
        }
    }
}
