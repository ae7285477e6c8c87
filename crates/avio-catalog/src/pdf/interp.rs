//! A text-state interpreter over lopdf's content parser: positioned glyphs and ruling lines.
//!
//! lopdf's own `extract_text` ignores positioning and Form XObjects, so we walk the
//! operators ourselves, keeping the graphics state stack (`q`/`Q`/`cm`), the text state
//! (`Tf`, `Tc`, `Tw`, `Tz`, `TL`, `Ts`) and the text and line matrices, and emit one
//! [`Glyph`] per decoded character in page space. Stroked and filled path segments that are
//! horizontal are kept as [`HRule`]s: they separate table rows when a generator draws them.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::font::{DecodedGlyph, Font, GlyphText};
use super::obj::{as_dict, deref, dict_get, name_of, num};
use crate::{CatalogError, Limits};

/// Nesting of Form XObjects followed; deeper nesting is hostile or pointless.
const MAX_FORM_DEPTH: usize = 12;
/// Saved graphics states kept; deeper `q` nesting is counted but not stored.
const MAX_STATE_DEPTH: usize = 256;
/// Path elements and rules kept per page: ruling needs hundreds, not millions.
const MAX_PATH_ITEMS: usize = 20_000;
const MAX_RULES: usize = 100_000;
/// Glyphs kept per page; a real price-list page has a few thousand.
const MAX_GLYPHS: usize = 500_000;

/// One character drawn on a page, in default user space (y grows upwards).
#[derive(Debug, Clone)]
pub(crate) struct Glyph {
    pub x: f64,
    pub y: f64,
    /// Horizontal extent of the glyph (its advance without extra character spacing).
    pub width: f64,
    /// Effective font size in page units.
    pub size: f64,
    pub ch: char,
}

/// A horizontal ruling segment (stroke or thin filled rectangle, or a rectangle edge).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HRule {
    pub y: f64,
    pub x0: f64,
    pub x1: f64,
}

#[derive(Debug, Default)]
pub(crate) struct PageText {
    pub glyphs: Vec<Glyph>,
    pub rules: Vec<HRule>,
    /// Characters that decoded to nothing usable (no ToUnicode, private use, controls).
    pub unreadable: usize,
    /// Operators lopdf could not parse; the rest of that stream was skipped.
    pub broken_streams: usize,
}

type Matrix = [f64; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `a` then `b`: the PDF convention for concatenating matrices.
fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

fn apply(m: &Matrix, x: f64, y: f64) -> (f64, f64) {
    (m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5])
}

#[derive(Clone)]
struct GState {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    h_scale: f64,
    leading: f64,
    rise: f64,
}

impl GState {
    fn new(ctm: Matrix) -> Self {
        Self { ctm, font: None, size: 0.0, char_spacing: 0.0, word_spacing: 0.0, h_scale: 1.0, leading: 0.0, rise: 0.0 }
    }
}

enum PathItem {
    Line(f64, f64, f64, f64),
    Rect(f64, f64, f64, f64),
}

/// Interprets pages of one document, sharing the font cache and the operator budget.
pub(crate) struct Interpreter<'a> {
    doc: &'a Document,
    limits: &'a Limits,
    fonts: HashMap<ObjectId, Rc<Font>>,
    ops_used: usize,
    bytes_used: u64,
    decoded: Vec<DecodedGlyph>,
}

impl<'a> Interpreter<'a> {
    pub(crate) fn new(doc: &'a Document, limits: &'a Limits) -> Self {
        Self { doc, limits, fonts: HashMap::new(), ops_used: 0, bytes_used: 0, decoded: Vec::new() }
    }

    fn budget_left(&self) -> u64 {
        self.limits.max_decompressed_bytes.saturating_sub(self.bytes_used)
    }

    fn charge_bytes(&mut self, n: usize) -> Result<(), CatalogError> {
        self.bytes_used = self.bytes_used.saturating_add(n as u64);
        if self.bytes_used > self.limits.max_decompressed_bytes {
            return Err(too_much_content(self.limits));
        }
        Ok(())
    }

    pub(crate) fn run_page(&mut self, page_id: ObjectId) -> Result<PageText, CatalogError> {
        let doc = self.doc;
        let budget = usize::try_from(self.budget_left()).unwrap_or(usize::MAX);
        let content = doc.get_page_content_with_limit(page_id, budget).map_err(|error| match error {
            lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. }) => {
                too_much_content(self.limits)
            }
            other => CatalogError::Corrupt(format!("PDF file: a page's content cannot be read ({other})")),
        })?;
        self.charge_bytes(content.len())?;
        let mut scopes: Vec<&'a Dictionary> = Vec::new();
        if let Ok((inline, ids)) = doc.get_page_resources(page_id) {
            scopes.extend(inline);
            scopes.extend(ids.into_iter().filter_map(|id| doc.get_object(id).ok()).filter_map(as_dict));
        }
        let mut page = PageText::default();
        let mut forms = Vec::new();
        // Lay the page out as it is displayed: a /Rotate'd page holds sideways text that
        // reads upright once the rotation is applied.
        let start = match page_rotation(doc, page_id) {
            90 => [0.0, -1.0, 1.0, 0.0, 0.0, 0.0],
            180 => [-1.0, 0.0, 0.0, -1.0, 0.0, 0.0],
            270 => [0.0, 1.0, -1.0, 0.0, 0.0, 0.0],
            _ => IDENTITY,
        };
        self.run_content(&content, &scopes, GState::new(start), &mut forms, &mut page)?;
        Ok(page)
    }

    fn lookup(
        &self,
        scopes: &[&'a Dictionary],
        category: &[u8],
        name: &[u8],
    ) -> Option<(Option<ObjectId>, &'a Object)> {
        let doc = self.doc;
        scopes.iter().find_map(|scope| {
            let group = dict_get(doc, scope, category).and_then(as_dict)?;
            let raw = group.get(name).ok()?;
            let id = match raw {
                Object::Reference(id) => Some(*id),
                _ => None,
            };
            Some((id, deref(doc, raw)))
        })
    }

    fn font(&mut self, scopes: &[&'a Dictionary], name: &[u8]) -> Option<Rc<Font>> {
        let (id, object) = self.lookup(scopes, b"Font", name)?;
        if let Some(id) = id
            && let Some(font) = self.fonts.get(&id)
        {
            return Some(font.clone());
        }
        let font = Rc::new(Font::load(self.doc, as_dict(object)?));
        if let Some(id) = id {
            self.fonts.insert(id, font.clone());
        }
        Some(font)
    }

    fn run_content(
        &mut self,
        content: &[u8],
        scopes: &[&'a Dictionary],
        mut gs: GState,
        forms: &mut Vec<ObjectId>,
        page: &mut PageText,
    ) -> Result<(), CatalogError> {
        let mut stack: Vec<GState> = Vec::new();
        let mut phantom_pushes = 0usize;
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        let mut path: Vec<PathItem> = Vec::new();
        let mut current = (0.0, 0.0);
        let mut subpath_start = (0.0, 0.0);
        for op in Content::decode_iter(content) {
            let Ok(op) = op else {
                page.broken_streams += 1;
                break;
            };
            self.ops_used += 1;
            if self.ops_used > self.limits.max_ops {
                return Err(CatalogError::TooLarge(format!(
                    "the PDF has more than {} drawing operators",
                    self.limits.max_ops
                )));
            }
            if self.ops_used.is_multiple_of(4096) {
                self.limits.check_deadline()?;
            }
            let operands = &op.operands;
            let n = |i: usize| operands.get(i).and_then(num).unwrap_or(0.0);
            match op.operator.as_str() {
                "q" => {
                    if stack.len() < MAX_STATE_DEPTH {
                        stack.push(gs.clone());
                    } else {
                        phantom_pushes += 1;
                    }
                }
                "Q" => {
                    if phantom_pushes > 0 {
                        phantom_pushes -= 1;
                    } else if let Some(saved) = stack.pop() {
                        gs = saved;
                    }
                }
                "cm" => gs.ctm = mul(&[n(0), n(1), n(2), n(3), n(4), n(5)], &gs.ctm),
                "BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                "Tf" => {
                    gs.font = operands.first().and_then(name_of).and_then(|name| self.font(scopes, name));
                    gs.size = n(1);
                }
                "Tc" => gs.char_spacing = n(0),
                "Tw" => gs.word_spacing = n(0),
                "Tz" => gs.h_scale = n(0) / 100.0,
                "TL" => gs.leading = n(0),
                "Ts" => gs.rise = n(0),
                "Td" | "TD" => {
                    if op.operator == "TD" {
                        gs.leading = -n(1);
                    }
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, n(0), n(1)], &tlm);
                    tm = tlm;
                }
                "Tm" => {
                    tlm = [n(0), n(1), n(2), n(3), n(4), n(5)];
                    tm = tlm;
                }
                "T*" => {
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading], &tlm);
                    tm = tlm;
                }
                "Tj" | "'" | "\"" => {
                    if op.operator != "Tj" {
                        if op.operator == "\"" {
                            gs.word_spacing = n(0);
                            gs.char_spacing = n(1);
                        }
                        tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading], &tlm);
                        tm = tlm;
                    }
                    if let Some(Object::String(bytes, _)) = operands.last() {
                        self.show(bytes, &gs, &mut tm, page);
                    }
                }
                "TJ" => {
                    if let Some(Object::Array(items)) = operands.first() {
                        for item in items {
                            match item {
                                Object::String(bytes, _) => self.show(bytes, &gs, &mut tm, page),
                                other => {
                                    let adjust = num(other).unwrap_or(0.0);
                                    let tx = -adjust / 1000.0 * gs.size * gs.h_scale;
                                    tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], &tm);
                                }
                            }
                        }
                    }
                }
                "Do" => {
                    if let Some(name) = operands.first().and_then(name_of) {
                        self.run_form(name, scopes, &gs, forms, page)?;
                    }
                }
                "m" => {
                    current = apply(&gs.ctm, n(0), n(1));
                    subpath_start = current;
                }
                "l" => {
                    let next = apply(&gs.ctm, n(0), n(1));
                    if path.len() < MAX_PATH_ITEMS {
                        path.push(PathItem::Line(current.0, current.1, next.0, next.1));
                    }
                    current = next;
                }
                "c" | "v" | "y" => {
                    let count = operands.len();
                    current = apply(&gs.ctm, n(count.saturating_sub(2)), n(count.saturating_sub(1)));
                }
                "h" => {
                    if path.len() < MAX_PATH_ITEMS {
                        path.push(PathItem::Line(current.0, current.1, subpath_start.0, subpath_start.1));
                    }
                    current = subpath_start;
                }
                "re" => {
                    let (x0, y0) = apply(&gs.ctm, n(0), n(1));
                    let (x1, y1) = apply(&gs.ctm, n(0) + n(2), n(1) + n(3));
                    if path.len() < MAX_PATH_ITEMS {
                        path.push(PathItem::Rect(x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)));
                    }
                    current = (x0, y0);
                    subpath_start = current;
                }
                "S" | "s" => {
                    collect_rules(&path, false, &mut page.rules);
                    path.clear();
                }
                "f" | "F" | "f*" | "B" | "B*" | "b" | "b*" => {
                    collect_rules(&path, true, &mut page.rules);
                    path.clear();
                }
                "n" => path.clear(),
                _ => {}
            }
        }
        Ok(())
    }

    fn run_form(
        &mut self,
        name: &[u8],
        scopes: &[&'a Dictionary],
        gs: &GState,
        forms: &mut Vec<ObjectId>,
        page: &mut PageText,
    ) -> Result<(), CatalogError> {
        let Some((Some(id), object)) = self.lookup(scopes, b"XObject", name) else {
            return Ok(());
        };
        let Object::Stream(stream) = object else { return Ok(()) };
        let doc = self.doc;
        if dict_get(doc, &stream.dict, b"Subtype").and_then(name_of) != Some(b"Form".as_slice()) {
            return Ok(());
        }
        // A form that draws itself (directly or through others) would never end.
        if forms.contains(&id) || forms.len() >= MAX_FORM_DEPTH {
            return Ok(());
        }
        let budget = usize::try_from(self.budget_left()).unwrap_or(usize::MAX);
        let content = match stream.decompressed_content_with_limit(budget) {
            Ok(content) => content,
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })) => {
                return Err(too_much_content(self.limits));
            }
            Err(_) if stream.content.len() <= budget => stream.content.clone(),
            Err(_) => return Err(too_much_content(self.limits)),
        };
        self.charge_bytes(content.len())?;
        let matrix = dict_get(doc, &stream.dict, b"Matrix")
            .and_then(|o| o.as_array().ok())
            .filter(|a| a.len() == 6)
            .map(|a| {
                let v = |i: usize| a.get(i).and_then(|o| num(deref(doc, o))).unwrap_or(0.0);
                [v(0), v(1), v(2), v(3), v(4), v(5)]
            })
            .unwrap_or(IDENTITY);
        let own: Vec<&'a Dictionary> =
            dict_get(doc, &stream.dict, b"Resources").and_then(as_dict).into_iter().collect();
        let form_scopes: Vec<&'a Dictionary> = if own.is_empty() { scopes.to_vec() } else { own };
        let mut form_gs = gs.clone();
        form_gs.ctm = mul(&matrix, &gs.ctm);
        forms.push(id);
        let result = self.run_content(&content, &form_scopes, form_gs, forms, page);
        forms.pop();
        result
    }

    fn show(&mut self, bytes: &[u8], gs: &GState, tm: &mut Matrix, page: &mut PageText) {
        let Some(font) = gs.font.clone() else { return };
        self.decoded.clear();
        font.decode(bytes, &mut self.decoded);
        for glyph in &self.decoded {
            let trm = mul(tm, &gs.ctm);
            let (x, y) = (trm[4] + gs.rise * trm[2], trm[5] + gs.rise * trm[3]);
            let size = gs.size * (trm[2] * trm[2] + trm[3] * trm[3]).sqrt();
            let glyph_width = glyph.width / 1000.0 * gs.size * gs.h_scale;
            let spacing = gs.char_spacing + if glyph.is_space_code { gs.word_spacing } else { 0.0 };
            let tx = glyph_width + spacing * gs.h_scale;
            // Only upright, left-to-right text takes part in table layout.
            let upright = trm[0] > 0.0 && trm[3] * gs.size.signum() > 0.0 && trm[1].abs() < 0.05 * trm[0].abs();
            if upright && size.is_finite() && size > 0.5 && page.glyphs.len() < MAX_GLYPHS {
                let width = glyph_width * trm[0];
                match &glyph.text {
                    GlyphText::One(ch) => push_char(page, *ch, x, y, width, size),
                    GlyphText::Many(text) => {
                        let count = text.chars().count().max(1) as f64;
                        for (idx, ch) in text.chars().enumerate() {
                            push_char(page, ch, x + width * idx as f64 / count, y, width / count, size);
                        }
                    }
                    GlyphText::Unknown => page.unreadable += 1,
                }
            }
            *tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], tm);
        }
    }
}

/// The page's /Rotate (inherited through the page tree), normalized to 0/90/180/270.
fn page_rotation(doc: &Document, page_id: ObjectId) -> i64 {
    let mut node = doc.get_dictionary(page_id).ok();
    for _ in 0..32 {
        let Some(dict) = node else { break };
        if let Some(Object::Integer(rotate)) = dict_get(doc, dict, b"Rotate") {
            return rotate.rem_euclid(360) / 90 * 90;
        }
        node = dict_get(doc, dict, b"Parent").and_then(as_dict);
    }
    0
}

fn push_char(page: &mut PageText, ch: char, x: f64, y: f64, width: f64, size: f64) {
    let private_use = ('\u{e000}'..='\u{f8ff}').contains(&ch);
    if private_use || ch == '\u{fffd}' || (ch.is_control() && !ch.is_whitespace()) {
        page.unreadable += 1;
        return;
    }
    if !(x.is_finite() && y.is_finite() && width.is_finite()) {
        return;
    }
    page.glyphs.push(Glyph { x, y, width: width.max(0.0), size, ch });
}

fn too_much_content(limits: &Limits) -> CatalogError {
    CatalogError::TooLarge(format!(
        "the PDF's page content decompresses to more than {} bytes",
        limits.max_decompressed_bytes
    ))
}

/// Keeps the horizontal parts of a painted path as row separators.
fn collect_rules(path: &[PathItem], filled: bool, rules: &mut Vec<HRule>) {
    for item in path {
        if rules.len() >= MAX_RULES {
            return;
        }
        match *item {
            PathItem::Line(x0, y0, x1, y1) => {
                if !filled && (y0 - y1).abs() < 0.5 && (x1 - x0).abs() > 2.0 {
                    rules.push(HRule { y: (y0 + y1) / 2.0, x0: x0.min(x1), x1: x0.max(x1) });
                }
            }
            PathItem::Rect(x0, y0, x1, y1) => {
                if x1 - x0 <= 2.0 {
                    continue;
                }
                if filled && y1 - y0 <= 2.5 {
                    // Chromium and others draw borders as thin filled rectangles.
                    rules.push(HRule { y: (y0 + y1) / 2.0, x0, x1 });
                } else {
                    rules.push(HRule { y: y0, x0, x1 });
                    rules.push(HRule { y: y1, x0, x1 });
                }
            }
        }
    }
}
