//! Hostile and broken inputs: every one must end in an error with a reason (or rows with
//! warnings) within a time bound, and never panic.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use avio_catalog::{CatalogError, Conversion, Limits, SourceKind, convert};

/// Generous for an unoptimized test build on a small CI machine.
const TIME_BOUND: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/catalog_corpus/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(bytes: &[u8], kind: SourceKind, limits: &Limits) -> Result<Conversion, CatalogError> {
    let started = Instant::now();
    let result = convert(bytes, kind, limits);
    assert!(started.elapsed() < TIME_BOUND, "{kind:?} took {:?}", started.elapsed());
    if let Err(error) = &result {
        assert!(error.to_string().len() > 20, "reason too terse: {error}");
    }
    result
}

/// A tiny deterministic generator so failures reproduce.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Builds a minimal PDF around one page content stream, with a correct xref table.
fn pdf_with_objects(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (idx, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", idx + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

fn page_pdf(content: &[u8], extra_stream_dict: &str) -> Vec<u8> {
    let content_obj = format!(
        "<< /Length {} {extra_stream_dict} >>\nstream\n{}\nendstream",
        content.len(),
        String::from_utf8_lossy(content)
    );
    pdf_with_objects(&[
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>".to_string(),
        content_obj,
    ])
}

#[test]
fn truncated_pdfs_fail_cleanly() {
    let bytes = fixture("price_reportlab.pdf");
    for cut in [10, 100, 1000, bytes.len() / 3, bytes.len() / 2, bytes.len() - 100] {
        let result = run(&bytes[..cut], SourceKind::Pdf, &Limits::default());
        if let Ok(conversion) = result {
            // Lenient xref repair may recover the pages that survived.
            assert!(conversion.rows.len() <= 240);
        }
    }
}

#[test]
fn corrupt_xref_is_repaired_or_reported() {
    let mut bytes = fixture("price_libreoffice.pdf");
    let find = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).rposition(|w| w == needle);
    if let Some(at) = find(&bytes, b"startxref") {
        let digits_at = at + "startxref".len() + 1;
        for b in bytes.iter_mut().skip(digits_at).take(4) {
            *b = b'9';
        }
    }
    if let Some(at) = find(&bytes, b"\nxref") {
        bytes[at + 1..at + 5].copy_from_slice(b"xxxx");
    }
    let _ = run(&bytes, SourceKind::Pdf, &Limits::default());
    let garbage = page_pdf(b"BT ET", "").into_iter().map(|b| if b == b'0' { b'7' } else { b }).collect::<Vec<_>>();
    let _ = run(&garbage, SourceKind::Pdf, &Limits::default());
}

#[test]
fn deeply_nested_objects_fail_cleanly() {
    let depth = 200_000;
    let nested_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_dict = format!("{}{}", "<< /A ".repeat(depth), ">>".repeat(depth));
    for body in [nested_array, nested_dict] {
        let bytes = pdf_with_objects(&[
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            format!("<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /X {body} >> >>"),
            "<< /Length 5 >>\nstream\nBT ET\nendstream".to_string(),
        ]);
        assert!(run(&bytes, SourceKind::Pdf, &Limits::default()).is_err());
    }
    // Nesting inside a content stream: operands of a TJ nested without end.
    let content = format!("BT {} TJ ET", "[".repeat(depth));
    assert!(run(&page_pdf(content.as_bytes(), ""), SourceKind::Pdf, &Limits::default()).is_err());
}

#[test]
fn huge_declared_streams_fail_cleanly() {
    let bytes = pdf_with_objects(&[
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_string(),
        "<< /Length 999999999999 >>\nstream\nBT ET\nendstream".to_string(),
    ]);
    assert!(run(&bytes, SourceKind::Pdf, &Limits::default()).is_err());
}

#[test]
fn decompression_bombs_in_page_content_hit_the_limit() {
    // 64 MiB of spaces deflated to a few kilobytes, against a 16 MiB budget.
    let mut encoder = zip_deflate();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&chunk).unwrap();
    }
    let compressed = encoder.finish_bytes();
    let mut bytes = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
        2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
        3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
        .to_vec();
    bytes.extend_from_slice(
        format!("4 0 obj << /Length {} /Filter /FlateDecode >>\nstream\n", compressed.len()).as_bytes(),
    );
    bytes.extend_from_slice(&compressed);
    bytes.extend_from_slice(b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    let limits = Limits { max_decompressed_bytes: 16 << 20, ..Limits::default() };
    match run(&bytes, SourceKind::Pdf, &limits) {
        Err(CatalogError::TooLarge(_)) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn millions_of_operators_hit_the_operator_limit() {
    let content = "0 0 m 1 1 l n\n".repeat(1_000_000);
    let bytes = page_pdf(content.as_bytes(), "");
    let limits = Limits { max_ops: 500_000, ..Limits::default() };
    match run(&bytes, SourceKind::Pdf, &limits) {
        Err(CatalogError::TooLarge(reason)) => assert!(reason.contains("operators"), "{reason}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn an_expired_deadline_stops_the_conversion() {
    let limits = Limits { deadline: Some(Instant::now()), ..Limits::default() };
    for (name, kind) in
        [("price_chromium.pdf", SourceKind::Pdf), ("price.xlsx", SourceKind::Xlsx), ("price_1c.csv", SourceKind::Csv)]
    {
        match run(&fixture(name), kind, &limits) {
            Err(CatalogError::Timeout) => {}
            other => panic!("{name}: expected Timeout, got {other:?}"),
        }
    }
}

/// A deflate writer built on the zip crate, so the tests need no extra compression crate.
struct Deflater(zip::ZipWriter<std::io::Cursor<Vec<u8>>>);
fn zip_deflate() -> Deflater {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("x", zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated))
        .unwrap();
    Deflater(writer)
}
impl Deflater {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }
    /// The raw deflate stream of the single entry (zlib header added for PDF's FlateDecode).
    fn finish_bytes(self) -> Vec<u8> {
        let archive = self.0.finish().unwrap().into_inner();
        let name_len = u16::from_le_bytes([archive[26], archive[27]]) as usize;
        let extra_len = u16::from_le_bytes([archive[28], archive[29]]) as usize;
        let compressed_len = u32::from_le_bytes([archive[18], archive[19], archive[20], archive[21]]) as usize;
        let start = 30 + name_len + extra_len;
        let mut out = vec![0x78, 0x9c];
        out.extend_from_slice(&archive[start..start + compressed_len]);
        out
    }
}

fn xlsx_with(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        writer
            .start_file(
                *name,
                zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
            )
            .unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn zip_bombs_inside_xlsx_are_refused_before_inflating() {
    // A real bomb: 32 MiB of zeros compresses about a thousand times.
    let bomb =
        xlsx_with(&[("[Content_Types].xml", b"<Types/>".to_vec()), ("xl/worksheets/sheet1.xml", vec![0u8; 32 << 20])]);
    match run(&bomb, SourceKind::Xlsx, &Limits::default()) {
        Err(CatalogError::TooLarge(reason)) => {
            assert!(reason.contains("zip bomb") || reason.contains("inflate"), "{reason}")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A lying directory: declared sizes of 4 GiB on a tiny entry.
    let mut liar = xlsx_with(&[("xl/worksheets/sheet1.xml", b"<worksheet/>".to_vec())]);
    for signature in [[0x50u8, 0x4b, 0x01, 0x02], [0x50, 0x4b, 0x03, 0x04]] {
        let offset = if signature[2] == 1 { 24 } else { 22 };
        if let Some(at) = liar.windows(4).position(|w| w == signature) {
            liar[at + offset..at + offset + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        }
    }
    assert!(run(&liar, SourceKind::Xlsx, &Limits::default()).is_err());
    assert!(run(&bomb, SourceKind::Ods, &Limits::default()).is_err());
}

#[test]
fn a_100_mb_csv_line_fails_fast() {
    let line = vec![b'a'; 100 << 20];
    let started = Instant::now();
    match run(&line, SourceKind::Csv, &Limits::default()) {
        Err(CatalogError::TooLarge(reason)) => assert!(reason.contains("line"), "{reason}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn html_saved_as_xls_is_named_as_such() {
    let html = b"<html><body><table><tr><td>\xd0\xa6\xd0\xb5\xd0\xbd\xd0\xb0</td></tr></table></body></html>";
    match run(html, SourceKind::Xls, &Limits::default()) {
        Err(CatalogError::Unsupported(reason)) => assert!(reason.contains("HTML"), "{reason}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let xml2003 = b"<?xml version=\"1.0\"?><Workbook xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\"/>";
    assert!(matches!(run(xml2003, SourceKind::Xls, &Limits::default()), Err(CatalogError::Unsupported(_))));
}

#[test]
fn random_bytes_with_every_extension_fail_cleanly() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let prefixes: [&[u8]; 5] =
        [b"", b"%PDF-1.7\n", b"PK\x03\x04", b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", b"\xEF\xBB\xBF"];
    for kind in [SourceKind::Csv, SourceKind::Xlsx, SourceKind::Xls, SourceKind::Ods, SourceKind::Pdf] {
        for prefix in prefixes {
            for size in [1usize, 64, 4096, 256 * 1024] {
                let mut bytes = prefix.to_vec();
                bytes.extend(rng.bytes(size));
                let _ = run(&bytes, kind, &Limits::default());
            }
        }
    }
    assert!(matches!(run(b"", SourceKind::Pdf, &Limits::default()), Err(CatalogError::Corrupt(_))));
}

#[test]
fn fixtures_converted_under_the_wrong_kind_fail_cleanly() {
    let files = ["price.xlsx", "price.xls", "price.ods", "price_1c.csv", "price_reportlab.pdf"];
    for name in files {
        let bytes = fixture(name);
        for kind in [SourceKind::Csv, SourceKind::Xlsx, SourceKind::Xls, SourceKind::Ods, SourceKind::Pdf] {
            let _ = run(&bytes, kind, &Limits::default());
        }
    }
}

/// price.xlsx with one extra cell appended to the first sheet.
fn xlsx_with_extra_cell(cell: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(fixture("price.xlsx"))).unwrap();
    let mut entries = Vec::new();
    for idx in 0..archive.len() {
        let mut file = archive.by_index(idx).unwrap();
        let name = file.name().unwrap().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).unwrap();
        if name == "xl/worksheets/sheet1.xml" {
            let extra = format!("<row r=\"1048576\"><c r=\"{cell}\" t=\"n\"><v>1</v></c></row></sheetData>");
            data = String::from_utf8(data).unwrap().replace("</sheetData>", &extra).into_bytes();
        }
        entries.push((name, data));
    }
    let entries: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    xlsx_with(&entries)
}

#[test]
fn a_sheet_declaring_the_whole_grid_does_not_allocate_it() {
    // One cell at XFD1048576 would make calamine's Range allocate 17 billion cells; cells
    // are streamed instead, and columns past the bound are ignored.
    match run(&xlsx_with_extra_cell("XFD1048576"), SourceKind::Xlsx, &Limits::default()) {
        Ok(conversion) => assert_eq!(conversion.rows.len(), 240),
        Err(error) => panic!("expected the table, got {error}"),
    }
    // A value a million rows down is past the row bound: a clear error, not a huge grid.
    match run(&xlsx_with_extra_cell("A1048576"), SourceKind::Xlsx, &Limits::default()) {
        Err(CatalogError::TooLarge(reason)) => assert!(reason.contains("rows"), "{reason}"),
        Ok(conversion) => panic!("expected TooLarge, got {} rows", conversion.rows.len()),
        Err(error) => panic!("expected TooLarge, got {error}"),
    }
}
