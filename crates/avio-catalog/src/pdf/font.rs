//! PDF fonts as the text layer needs them: code splitting, code → Unicode, glyph advances.
//!
//! Unicode comes from `/ToUnicode` first (lopdf prefers `/Encoding`, which garbles fonts that
//! have both), then `/Differences` glyph names resolved one glyph at a time, then the base
//! encoding. Widths come from `/Widths` + `/FirstChar` or the CID `/W` array of a Type0
//! font's descendant (`/DW` as default).

use std::collections::HashMap;

use lopdf::{Dictionary, Document, Object};

use super::obj::{deref, dict_get, name_of, num};

/// Entries a ToUnicode range may expand to; bigger ranges are hostile or broken.
const MAX_RANGE_SPAN: u32 = 65_536;
/// Entries of one CID `/W` array we accept.
const MAX_WIDTH_ENTRIES: usize = 200_000;

/// One decoded glyph: its Unicode text (usually one char) and advance in text space units.
pub(crate) struct DecodedGlyph {
    pub text: GlyphText,
    /// Advance in thousandths of the font size (before Tc/Tw/Tz).
    pub width: f64,
    /// Whether this is the single-byte code 32, the only one word spacing applies to.
    pub is_space_code: bool,
}

/// Unicode for one code; most glyphs are one char, ligatures a few.
pub(crate) enum GlyphText {
    One(char),
    Many(String),
    Unknown,
}

#[derive(Default)]
struct ToUnicode {
    single: HashMap<u32, String>,
    ranges: Vec<(u32, u32, RangeTarget)>,
    /// Code byte lengths from `begincodespacerange`: (bytes, low, high).
    codespace: Vec<(usize, u32, u32)>,
}

enum RangeTarget {
    /// UTF-16 units of the first code; the last unit increments along the range.
    Base(Vec<u16>),
    List(Vec<String>),
}

pub(crate) struct Font {
    /// Type0 fonts use multi-byte codes (Identity-H: always two bytes).
    multi_byte: bool,
    to_unicode: Option<ToUnicode>,
    /// Base encoding with `/Differences` applied, for simple fonts.
    simple_map: Vec<Option<GlyphTextSimple>>,
    first_char: u32,
    widths: Vec<f64>,
    cid_widths: HashMap<u32, f64>,
    default_width: f64,
    /// Codes are UCS-2 (predefined `Uni*-UCS2-H` CMaps without a ToUnicode).
    ucs2_codes: bool,
    /// Type3 fonts measure glyphs in their own matrix units, not thousandths.
    width_scale: f64,
}

#[derive(Clone)]
enum GlyphTextSimple {
    One(char),
    Many(String),
}

impl Font {
    /// Builds a font from its dictionary; never fails, a broken part just decodes less.
    pub(crate) fn load(doc: &Document, dict: &Dictionary) -> Font {
        let subtype = dict_get(doc, dict, b"Subtype").and_then(name_of).unwrap_or_default();
        let multi_byte = subtype == b"Type0";
        let to_unicode = dict_get(doc, dict, b"ToUnicode")
            .and_then(|o| o.as_stream().ok())
            .and_then(|stream| stream.decompressed_content_with_limit(4 * 1024 * 1024).ok())
            .map(|bytes| parse_cmap(&bytes));
        let mut font = Font {
            multi_byte,
            to_unicode,
            simple_map: Vec::new(),
            first_char: 0,
            widths: Vec::new(),
            cid_widths: HashMap::new(),
            default_width: 1000.0,
            ucs2_codes: false,
            width_scale: 1.0,
        };
        if multi_byte {
            let encoding = dict_get(doc, dict, b"Encoding").and_then(name_of).unwrap_or_default();
            let encoding = String::from_utf8_lossy(encoding);
            font.ucs2_codes = encoding.contains("UCS2") || encoding.contains("UTF16");
            let descendant = dict_get(doc, dict, b"DescendantFonts")
                .and_then(|o| o.as_array().ok())
                .and_then(|a| a.first())
                .map(|o| deref(doc, o))
                .and_then(|o| o.as_dict().ok());
            if let Some(descendant) = descendant {
                font.default_width = dict_get(doc, descendant, b"DW").and_then(num).unwrap_or(1000.0);
                if let Some(w) = dict_get(doc, descendant, b"W").and_then(|o| o.as_array().ok()) {
                    font.cid_widths = parse_cid_widths(doc, w);
                }
            }
        } else {
            font.simple_map = simple_encoding(doc, dict, subtype);
            font.first_char =
                dict_get(doc, dict, b"FirstChar").and_then(num).map(|v| v.clamp(0.0, 255.0) as u32).unwrap_or(0);
            if let Some(widths) = dict_get(doc, dict, b"Widths").and_then(|o| o.as_array().ok()) {
                font.widths = widths.iter().take(256).map(|w| num(deref(doc, w)).unwrap_or(0.0)).collect();
            }
            let missing = dict_get(doc, dict, b"FontDescriptor")
                .and_then(|o| o.as_dict().ok())
                .and_then(|d| dict_get(doc, d, b"MissingWidth"))
                .and_then(num);
            // Standard-14 fonts come without widths; half an em is a fair average advance.
            font.default_width =
                missing.filter(|w| *w > 0.0).unwrap_or(if font.widths.is_empty() { 550.0 } else { 0.0 });
            if subtype == b"Type3" {
                let scale = dict_get(doc, dict, b"FontMatrix")
                    .and_then(|o| o.as_array().ok())
                    .and_then(|a| a.first())
                    .and_then(|o| num(deref(doc, o)))
                    .unwrap_or(0.001);
                font.width_scale = (scale * 1000.0).abs().clamp(0.0, 1000.0);
            }
        }
        font
    }

    /// Splits a string operand into codes and decodes each one.
    pub(crate) fn decode(&self, bytes: &[u8], out: &mut Vec<DecodedGlyph>) {
        let mut pos = 0;
        while pos < bytes.len() {
            let len = self.code_length(bytes.get(pos..).unwrap_or_default());
            let chunk = bytes.get(pos..pos + len).unwrap_or_default();
            pos += len.max(1);
            let code = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            out.push(DecodedGlyph {
                text: self.text_for(code),
                width: self.width_for(code) * self.width_scale,
                is_space_code: len == 1 && code == 32,
            });
        }
    }

    fn code_length(&self, rest: &[u8]) -> usize {
        if let Some(cmap) = &self.to_unicode
            && !cmap.codespace.is_empty()
        {
            // The shortest codespace range that contains the prefix of that length.
            for len in 1..=4usize {
                let Some(prefix) = rest.get(..len) else { break };
                let code = prefix.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
                if cmap.codespace.iter().any(|(n, lo, hi)| *n == len && code >= *lo && code <= *hi) {
                    return len;
                }
            }
        }
        if self.multi_byte { 2.min(rest.len()).max(1) } else { 1 }
    }

    fn text_for(&self, code: u32) -> GlyphText {
        if let Some(cmap) = &self.to_unicode
            && let Some(text) = cmap.lookup(code)
        {
            return text;
        }
        if self.multi_byte {
            if self.ucs2_codes
                && let Some(c) = char::from_u32(code)
            {
                return GlyphText::One(c);
            }
            return GlyphText::Unknown;
        }
        match self.simple_map.get(code as usize).cloned().flatten() {
            Some(GlyphTextSimple::One(c)) => GlyphText::One(c),
            Some(GlyphTextSimple::Many(s)) => GlyphText::Many(s),
            None => GlyphText::Unknown,
        }
    }

    fn width_for(&self, code: u32) -> f64 {
        if self.multi_byte {
            return self.cid_widths.get(&code).copied().unwrap_or(self.default_width);
        }
        code.checked_sub(self.first_char)
            .and_then(|idx| self.widths.get(idx as usize))
            .copied()
            .unwrap_or(if code == 32 && self.widths.is_empty() { 278.0 } else { self.default_width })
    }
}

impl ToUnicode {
    fn lookup(&self, code: u32) -> Option<GlyphText> {
        if let Some(text) = self.single.get(&code) {
            return Some(to_glyph_text(text));
        }
        for (lo, hi, target) in &self.ranges {
            if code < *lo || code > *hi {
                continue;
            }
            let offset = code - lo;
            return match target {
                RangeTarget::Base(units) => {
                    let mut units = units.clone();
                    if let Some(last) = units.last_mut() {
                        *last = last.wrapping_add(offset as u16);
                    }
                    Some(to_glyph_text(&String::from_utf16_lossy(&units)))
                }
                RangeTarget::List(list) => list.get(offset as usize).map(|s| to_glyph_text(s)),
            };
        }
        None
    }
}

fn to_glyph_text(text: &str) -> GlyphText {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => GlyphText::One(c),
        (None, _) => GlyphText::Unknown,
        _ => GlyphText::Many(text.to_string()),
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Hex(Vec<u8>),
    Name(String),
    Word(String),
    Open,
    Close,
}

/// Tokenizes a CMap program; only the parts bfchar/bfrange/codespacerange use matter.
fn cmap_tokens(bytes: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(&b) = bytes.get(pos) {
        match b {
            b'%' => {
                while bytes.get(pos).is_some_and(|c| *c != b'\n' && *c != b'\r') {
                    pos += 1;
                }
            }
            b'<' if bytes.get(pos + 1) == Some(&b'<') => pos += 2,
            b'>' if bytes.get(pos + 1) == Some(&b'>') => pos += 2,
            b'<' => {
                let mut digits = Vec::new();
                pos += 1;
                while let Some(&c) = bytes.get(pos) {
                    pos += 1;
                    if c == b'>' {
                        break;
                    }
                    if let Some(d) = (c as char).to_digit(16) {
                        digits.push(d as u8);
                    }
                }
                if digits.len() % 2 == 1 {
                    digits.push(0);
                }
                tokens
                    .push(Token::Hex(digits.chunks(2).map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0)).collect()));
            }
            b'[' => {
                tokens.push(Token::Open);
                pos += 1;
            }
            b']' => {
                tokens.push(Token::Close);
                pos += 1;
            }
            b'(' => {
                // Literal strings only appear in CMap metadata; skip them with nesting.
                let mut depth = 0usize;
                while let Some(&c) = bytes.get(pos) {
                    pos += 1;
                    match c {
                        b'\\' => pos += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            b'/' => {
                let start = pos + 1;
                pos += 1;
                while bytes.get(pos).is_some_and(|c| !is_delimiter(*c)) {
                    pos += 1;
                }
                tokens
                    .push(Token::Name(String::from_utf8_lossy(bytes.get(start..pos).unwrap_or_default()).into_owned()));
            }
            c if c.is_ascii_whitespace() => pos += 1,
            _ => {
                let start = pos;
                while bytes.get(pos).is_some_and(|c| !is_delimiter(*c)) {
                    pos += 1;
                }
                if pos == start {
                    pos += 1;
                    continue;
                }
                tokens
                    .push(Token::Word(String::from_utf8_lossy(bytes.get(start..pos).unwrap_or_default()).into_owned()));
            }
        }
    }
    tokens
}

fn is_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'<' | b'>' | b'[' | b']' | b'(' | b')' | b'/' | b'%' | b'{' | b'}')
}

fn code_of(bytes: &[u8]) -> u32 {
    bytes.iter().take(4).fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> =
        bytes.chunks(2).map(|p| (u16::from(p[0]) << 8) | u16::from(p.get(1).copied().unwrap_or(0))).collect();
    String::from_utf16_lossy(&units)
}

fn parse_cmap(bytes: &[u8]) -> ToUnicode {
    let tokens = cmap_tokens(bytes);
    let mut cmap = ToUnicode::default();
    let mut idx = 0;
    while let Some(token) = tokens.get(idx) {
        idx += 1;
        let Token::Word(word) = token else { continue };
        match word.as_str() {
            "begincodespacerange" => {
                while let (Some(Token::Hex(lo)), Some(Token::Hex(hi))) = (tokens.get(idx), tokens.get(idx + 1)) {
                    cmap.codespace.push((lo.len().clamp(1, 4), code_of(lo), code_of(hi)));
                    idx += 2;
                }
            }
            "beginbfchar" => {
                while let (Some(Token::Hex(src)), Some(dst)) = (tokens.get(idx), tokens.get(idx + 1)) {
                    let text = match dst {
                        Token::Hex(dst) => utf16_text(dst),
                        Token::Name(name) => glyph_name_text(name).unwrap_or_default(),
                        _ => break,
                    };
                    cmap.single.insert(code_of(src), text);
                    idx += 2;
                }
            }
            "beginbfrange" => {
                while let (Some(Token::Hex(lo)), Some(Token::Hex(hi))) = (tokens.get(idx), tokens.get(idx + 1)) {
                    let (lo, hi) = (code_of(lo), code_of(hi));
                    idx += 2;
                    let valid = hi >= lo && hi - lo < MAX_RANGE_SPAN;
                    match tokens.get(idx) {
                        Some(Token::Hex(dst)) => {
                            idx += 1;
                            let units: Vec<u16> = dst
                                .chunks(2)
                                .map(|p| (u16::from(p[0]) << 8) | u16::from(p.get(1).copied().unwrap_or(0)))
                                .collect();
                            if valid {
                                cmap.ranges.push((lo, hi, RangeTarget::Base(units)));
                            }
                        }
                        Some(Token::Open) => {
                            idx += 1;
                            let mut list = Vec::new();
                            while let Some(Token::Hex(dst)) = tokens.get(idx) {
                                list.push(utf16_text(dst));
                                idx += 1;
                            }
                            if tokens.get(idx) == Some(&Token::Close) {
                                idx += 1;
                            }
                            if valid {
                                cmap.ranges.push((lo, hi, RangeTarget::List(list)));
                            }
                        }
                        _ => break,
                    }
                }
            }
            _ => {}
        }
    }
    cmap
}

fn parse_cid_widths(doc: &Document, array: &[Object]) -> HashMap<u32, f64> {
    let mut widths = HashMap::new();
    let mut idx = 0;
    while idx < array.len() && widths.len() < MAX_WIDTH_ENTRIES {
        let Some(first) = array.get(idx).and_then(|o| num(deref(doc, o))) else { break };
        let first = first.max(0.0) as u32;
        match array.get(idx + 1).map(|o| deref(doc, o)) {
            Some(Object::Array(list)) => {
                for (offset, w) in list.iter().enumerate().take(MAX_WIDTH_ENTRIES) {
                    if let Some(w) = num(deref(doc, w)) {
                        widths.insert(first.saturating_add(offset as u32), w);
                    }
                }
                idx += 2;
            }
            Some(other) => {
                let last = num(other).unwrap_or(0.0).max(0.0) as u32;
                let w = array.get(idx + 2).and_then(|o| num(deref(doc, o))).unwrap_or(0.0);
                if last >= first && last - first < MAX_RANGE_SPAN {
                    for cid in first..=last {
                        widths.insert(cid, w);
                    }
                }
                idx += 3;
            }
            None => break,
        }
    }
    widths
}

/// The 256-entry code → text table of a simple font: base encoding, then `/Differences`.
fn simple_encoding(doc: &Document, dict: &Dictionary, subtype: &[u8]) -> Vec<Option<GlyphTextSimple>> {
    let encoding = dict_get(doc, dict, b"Encoding");
    let (base_name, differences) = match encoding {
        Some(Object::Name(name)) => (Some(name.as_slice()), None),
        Some(Object::Dictionary(enc)) => (
            dict_get(doc, enc, b"BaseEncoding").and_then(name_of),
            dict_get(doc, enc, b"Differences").and_then(|o| o.as_array().ok()),
        ),
        _ => (None, None),
    };
    let mac = base_name == Some(b"MacRomanEncoding".as_slice());
    let mut map: Vec<Option<GlyphTextSimple>> = (0u32..256)
        .map(|code| {
            let byte = [code as u8];
            let decoded = if code < 128 {
                char::from_u32(code).map(String::from)
            } else if mac {
                Some(encoding_rs::MACINTOSH.decode_without_bom_handling(&byte).0.into_owned())
            } else if subtype == b"Type3" && base_name.is_none() {
                None
            } else {
                // WinAnsi is what nearly every simple font without a ToUnicode uses.
                Some(encoding_rs::WINDOWS_1252.decode_without_bom_handling(&byte).0.into_owned())
            };
            decoded.filter(|s| !s.is_empty()).map(|s| simple_text(&s))
        })
        .collect();
    if let Some(differences) = differences {
        let mut code: i64 = 0;
        for item in differences.iter().take(4096) {
            match deref(doc, item) {
                Object::Integer(n) => code = *n,
                Object::Name(name) => {
                    if let Some(slot) = usize::try_from(code).ok().and_then(|c| map.get_mut(c)) {
                        // An unknown name keeps the base encoding for this one code only.
                        if let Some(text) = glyph_name_text(&String::from_utf8_lossy(name)) {
                            *slot = Some(simple_text(&text));
                        }
                    }
                    code += 1;
                }
                _ => {}
            }
        }
    }
    map
}

fn simple_text(text: &str) -> GlyphTextSimple {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => GlyphTextSimple::One(c),
        _ => GlyphTextSimple::Many(text.to_string()),
    }
}

/// Resolves a glyph name: `uniXXXX`, `uXXXX[XX]`, Adobe Glyph List names we meet in price
/// lists (ASCII, typographic quotes, Cyrillic `afii100xx`), ligatures and `.suffix` variants.
pub(crate) fn glyph_name_text(name: &str) -> Option<String> {
    let base = name.split('.').next().unwrap_or(name);
    if base.is_empty() {
        return None;
    }
    if base.contains('_') {
        let parts: Option<Vec<String>> = base.split('_').map(glyph_name_text).collect();
        return parts.map(|p| p.concat());
    }
    if let Some(hex) = base.strip_prefix("uni")
        && hex.len() >= 4
        && hex.len() % 4 == 0
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        let units: Vec<u16> = (0..hex.len() / 4)
            .filter_map(|i| hex.get(i * 4..i * 4 + 4).and_then(|h| u16::from_str_radix(h, 16).ok()))
            .collect();
        return Some(String::from_utf16_lossy(&units));
    }
    if let Some(hex) = base.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).map(String::from);
    }
    if let Some(digits) = base.strip_prefix("afii")
        && let Ok(n) = digits.parse::<u32>()
    {
        let code = match n {
            10017..=10022 => 0x410 + (n - 10017),
            10023 => 0x401,
            10024..=10049 => 0x416 + (n - 10024),
            10065..=10070 => 0x430 + (n - 10065),
            10071 => 0x451,
            10072..=10097 => 0x436 + (n - 10072),
            61352 => 0x2116,
            _ => return None,
        };
        return char::from_u32(code).map(String::from);
    }
    if base.len() == 1 && base.is_ascii() && base.chars().all(|c| c.is_ascii_alphabetic()) {
        return Some(base.to_string());
    }
    let text = match base {
        "space" | "nbspace" | "nonbreakingspace" => " ",
        "exclam" => "!",
        "quotedbl" => "\"",
        "numbersign" => "#",
        "dollar" => "$",
        "percent" => "%",
        "ampersand" => "&",
        "quotesingle" => "'",
        "parenleft" => "(",
        "parenright" => ")",
        "asterisk" => "*",
        "plus" => "+",
        "comma" => ",",
        "hyphen" | "minus" | "sfthyphen" => "-",
        "period" => ".",
        "slash" => "/",
        "zero" => "0",
        "one" => "1",
        "two" => "2",
        "three" => "3",
        "four" => "4",
        "five" => "5",
        "six" => "6",
        "seven" => "7",
        "eight" => "8",
        "nine" => "9",
        "colon" => ":",
        "semicolon" => ";",
        "less" => "<",
        "equal" => "=",
        "greater" => ">",
        "question" => "?",
        "at" => "@",
        "bracketleft" => "[",
        "backslash" => "\\",
        "bracketright" => "]",
        "asciicircum" => "^",
        "underscore" => "_",
        "grave" => "`",
        "braceleft" => "{",
        "bar" => "|",
        "braceright" => "}",
        "asciitilde" => "~",
        "quoteleft" => "\u{2018}",
        "quoteright" => "\u{2019}",
        "quotedblleft" => "\u{201c}",
        "quotedblright" => "\u{201d}",
        "quotedblbase" => "\u{201e}",
        "quotesinglbase" => "\u{201a}",
        "guillemotleft" | "guillemetleft" => "«",
        "guillemotright" | "guillemetright" => "»",
        "endash" => "\u{2013}",
        "emdash" => "\u{2014}",
        "bullet" => "\u{2022}",
        "ellipsis" => "\u{2026}",
        "multiply" => "×",
        "degree" => "°",
        "numero" => "№",
        "Euro" => "€",
        "ruble" => "₽",
        "copyright" => "©",
        "registered" => "®",
        "trademark" => "™",
        "section" => "§",
        "paragraph" => "¶",
        "periodcentered" => "·",
        "plusminus" => "±",
        "twosuperior" => "²",
        "threesuperior" => "³",
        "fi" => "fi",
        "fl" => "fl",
        "ff" => "ff",
        "ffi" => "ffi",
        "ffl" => "ffl",
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names_resolve_per_glyph() {
        assert_eq!(glyph_name_text("uni0416").as_deref(), Some("Ж"));
        assert_eq!(glyph_name_text("uni00410042").as_deref(), Some("AB"));
        assert_eq!(glyph_name_text("u1F600").as_deref(), Some("😀"));
        assert_eq!(glyph_name_text("afii10017").as_deref(), Some("А"));
        assert_eq!(glyph_name_text("afii10023").as_deref(), Some("Ё"));
        assert_eq!(glyph_name_text("afii10049").as_deref(), Some("Я"));
        assert_eq!(glyph_name_text("afii10097").as_deref(), Some("я"));
        assert_eq!(glyph_name_text("guillemotleft").as_deref(), Some("«"));
        assert_eq!(glyph_name_text("f_i").as_deref(), Some("fi"));
        assert_eq!(glyph_name_text("a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_name_text("g1234"), None);
    }

    #[test]
    fn cmap_bfchar_and_bfrange_forms_parse() {
        let cmap = parse_cmap(
            b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
              1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
              2 beginbfchar <0003> <0020> <0011> <0416> endbfchar\n\
              2 beginbfrange <0020> <0022> <0041> <0030> <0031> [<00AB> <00BB>] endbfrange\n\
              endcmap",
        );
        let text = |code| match cmap.lookup(code) {
            Some(GlyphText::One(c)) => c.to_string(),
            Some(GlyphText::Many(s)) => s,
            _ => String::new(),
        };
        assert_eq!(text(3), " ");
        assert_eq!(text(0x11), "Ж");
        assert_eq!(text(0x21), "B");
        assert_eq!(text(0x31), "»");
        assert_eq!(cmap.codespace, vec![(2, 0, 0xFFFF)]);
    }

    #[test]
    fn hostile_cmap_ranges_are_ignored() {
        let cmap = parse_cmap(b"beginbfrange <00000000> <FFFFFFFF> <0041> endbfrange <0001> <0000> <0041>");
        assert!(cmap.ranges.is_empty());
        let _ = parse_cmap(b"<<<<[[[[(((\\");
    }
}
