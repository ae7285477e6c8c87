//! The PDF text layer on hand-built documents: the lopdf traps (ToUnicode before Encoding,
//! per-glyph Differences, text inside Form XObjects), Type0/Identity-H fonts with CID widths,
//! and the warning for a font that cannot be decoded.

use avio_catalog::{CatalogError, Limits, SourceKind, convert};
use lopdf::{Document, Object, Stream, dictionary};

/// A simple font whose ToUnicode maps 0x80.. to Cyrillic А..я, while its /Encoding says
/// WinAnsi (which would decode the same bytes as €‚ƒ…): the ToUnicode must win.
fn cyrillic_simple_font(doc: &mut Document, differences: Option<Vec<Object>>) -> lopdf::ObjectId {
    let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
        1 begincodespacerange <00> <FF> endcodespacerange\n\
        2 beginbfrange <20> <7E> <0020> <80> <BF> <0410> endbfrange\n\
        2 beginbfchar <C0> <00AB> <C1> <00BB> endbfchar\n\
        endcmap CMapName currentdict /CMap defineresource pop end end"
        .to_vec();
    let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap));
    let encoding: Object = match differences {
        Some(diffs) => dictionary! { "BaseEncoding" => "WinAnsiEncoding", "Differences" => diffs }.into(),
        None => "WinAnsiEncoding".into(),
    };
    let widths: Vec<Object> = (32..=255).map(|_| Object::Integer(500)).collect();
    let mut font = dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => encoding,
        "FirstChar" => 32,
        "Widths" => widths,
    };
    font.set("ToUnicode", to_unicode);
    doc.add_object(font)
}

fn encode_simple(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            'А'..='я' => 0x80 + (c as u32 - 0x410) as u8,
            '«' => 0xC0,
            '»' => 0xC1,
            c if c.is_ascii() => c as u8,
            _ => b'?',
        })
        .collect()
}

fn literal(bytes: &[u8]) -> String {
    let mut out = String::from("(");
    for b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(*b as char);
            }
            0x20..=0x7e => out.push(*b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push(')');
    out
}

const TABLE: [[&str; 3]; 4] = [
    ["Артикул", "Наименование", "Цена"],
    ["A-101", "Стул «Венский»", "1 200"],
    ["A-102", "Стол обеденный", "15 990,50"],
    ["A-103", "Кресло", "7 000"],
];

/// Content drawing TABLE at left x positions 50/150/400, one line every 14 points.
fn table_content(encode: impl Fn(&str) -> String, font: &str) -> Vec<u8> {
    let mut content = String::new();
    for (row_idx, row) in TABLE.iter().enumerate() {
        for (col_idx, cell) in row.iter().enumerate() {
            let x = [50, 150, 400][col_idx];
            let y = 700 - 14 * row_idx as i32;
            content.push_str(&format!("BT /{font} 10 Tf 1 0 0 1 {x} {y} Tm {} Tj ET\n", encode(cell)));
        }
    }
    content.into_bytes()
}

fn single_page(doc: &mut Document, content: Vec<u8>, resources: lopdf::Dictionary) -> Vec<u8> {
    let pages_id = doc.new_object_id();
    let content_id = doc.add_object(Stream::new(dictionary! {}, content));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "Contents" => content_id,
        "Resources" => resources,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

fn assert_table(bytes: &[u8]) {
    let conversion = convert(bytes, SourceKind::Pdf, &Limits::default()).unwrap();
    let got: Vec<(String, String, String)> =
        conversion.rows.iter().map(|r| (r.sku.clone(), r.name.clone(), r.price.clone())).collect();
    assert_eq!(
        got,
        vec![
            ("A-101".to_string(), "Стул «Венский»".to_string(), "1200".to_string()),
            ("A-102".to_string(), "Стол обеденный".to_string(), "15990.5".to_string()),
            ("A-103".to_string(), "Кресло".to_string(), "7000".to_string()),
        ]
    );
}

#[test]
fn to_unicode_wins_over_encoding() {
    let mut doc = Document::with_version("1.5");
    let font = cyrillic_simple_font(&mut doc, None);
    let content = table_content(|s| literal(&encode_simple(s)), "F1");
    let bytes = single_page(&mut doc, content, dictionary! { "Font" => dictionary! { "F1" => font } });
    assert_table(&bytes);
}

#[test]
fn unknown_difference_names_break_only_their_glyph() {
    // Without a ToUnicode, glyph names decide: a non-standard name must not garble the font.
    let mut doc = Document::with_version("1.5");
    let mut diffs: Vec<Object> = vec![Object::Integer(0x80)];
    for offset in 0..64u32 {
        let name = if offset % 2 == 0 {
            format!("uni{:04X}", 0x410 + offset)
        } else {
            // afii names are how older generators spell Cyrillic.
            let n = if offset < 32 {
                if offset < 6 { 10017 + offset } else { 10024 + offset - 6 }
            } else if offset - 32 < 6 {
                10065 + offset - 32
            } else {
                10072 + offset - 38
            };
            format!("afii{n}")
        };
        diffs.push(Object::Name(name.into_bytes()));
    }
    diffs.push(Object::Name(b"guillemotleft".to_vec()));
    diffs.push(Object::Name(b"guillemotright".to_vec()));
    diffs.push(Object::Integer(0x7F));
    diffs.push(Object::Name(b"g1234".to_vec()));
    let font_id = cyrillic_simple_font(&mut doc, Some(diffs));
    if let Ok(Object::Dictionary(font)) = doc.get_object_mut(font_id) {
        font.remove(b"ToUnicode");
    }
    let content = table_content(|s| literal(&encode_simple(s)), "F1");
    let bytes = single_page(&mut doc, content, dictionary! { "Font" => dictionary! { "F1" => font_id } });
    assert_table(&bytes);
}

#[test]
fn text_inside_form_xobjects_is_read_with_the_form_matrix() {
    let mut doc = Document::with_version("1.5");
    let font = cyrillic_simple_font(&mut doc, None);
    // The form draws the table 100 points lower than written; /Matrix moves it back up.
    let shifted: Vec<u8> = String::from_utf8(table_content(|s| literal(&encode_simple(s)), "F1"))
        .unwrap()
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let y: i32 = parts[9].parse().unwrap();
            let mut parts: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            parts[9] = (y - 100).to_string();
            parts.join(" ") + "\n"
        })
        .collect::<String>()
        .into_bytes();
    let form = doc.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "Matrix" => vec![1.into(), 0.into(), 0.into(), 1.into(), 0.into(), 100.into()],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
        },
        shifted,
    ));
    let bytes =
        single_page(&mut doc, b"q /Fm1 Do Q".to_vec(), dictionary! { "XObject" => dictionary! { "Fm1" => form } });
    assert_table(&bytes);
}

#[test]
fn identity_h_fonts_use_two_byte_codes_and_cid_widths() {
    let mut doc = Document::with_version("1.5");
    // CID = Unicode code point here, mapped through a bfrange covering ASCII and Cyrillic.
    let cmap = b"begincmap 1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
        3 beginbfrange <0020> <007E> <0020> <0410> <044F> <0410> <00AB> <00BB> [<00AB> <00AC> <00AD> <00AE> <00AF> <00B0> <00B1> <00B2> <00B3> <00B4> <00B5> <00B6> <00B7> <00B8> <00B9> <00BA> <00BB>] endbfrange endcmap"
        .to_vec();
    let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap));
    let descendant = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => "DejaVuSans",
        "DW" => 600,
        "W" => vec![0x20.into(), vec![Object::Integer(300)].into(), 0x410.into(), 0x44F.into(), 650.into()],
    });
    let font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => "DejaVuSans",
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![descendant.into()],
        "ToUnicode" => to_unicode,
    });
    let encode = |s: &str| {
        let hex: String = s.chars().map(|c| format!("{:04X}", c as u32)).collect();
        format!("<{hex}>")
    };
    let content = table_content(encode, "F2");
    let bytes = single_page(&mut doc, content, dictionary! { "Font" => dictionary! { "F2" => font } });
    assert_table(&bytes);
}

#[test]
fn undecodable_fonts_fail_with_a_reason_instead_of_garbage() {
    let mut doc = Document::with_version("1.5");
    let descendant = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "X" });
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "X", "Encoding" => "Identity-H",
        "DescendantFonts" => vec![descendant.into()],
    });
    let content = table_content(
        |s| format!("<{}>", s.chars().map(|c| format!("{:04X}", c as u32 % 500)).collect::<String>()),
        "F1",
    );
    let bytes = single_page(&mut doc, content, dictionary! { "Font" => dictionary! { "F1" => font } });
    match convert(&bytes, SourceKind::Pdf, &Limits::default()) {
        Err(CatalogError::NoTable(reason)) => assert!(reason.contains("cannot be decoded"), "{reason}"),
        other => panic!("expected NoTable, got {other:?}"),
    }
}

#[test]
fn rotated_pages_are_read_as_displayed() {
    // A /Rotate 90 page whose content is drawn sideways so that it reads upright on screen.
    let mut doc = Document::with_version("1.5");
    let font = cyrillic_simple_font(&mut doc, None);
    let mut content = b"q 0 1 -1 0 842 0 cm\n".to_vec();
    content.extend(table_content(|s| literal(&encode_simple(s)), "F1"));
    content.extend_from_slice(b"Q\n");
    let bytes = single_page(&mut doc, content, dictionary! { "Font" => dictionary! { "F1" => font } });
    let mut doc = Document::load_mem(&bytes).unwrap();
    let page_id = *doc.get_pages().values().next().unwrap();
    if let Ok(Object::Dictionary(page)) = doc.get_object_mut(page_id) {
        page.set("Rotate", 90);
    }
    let mut rotated = Vec::new();
    doc.save_to(&mut rotated).unwrap();
    assert_table(&rotated);
}
