//! From positioned glyphs to table records: lines, words, columns, rows and categories.
//!
//! Lines are glyphs sharing a baseline; words split at spaces and gaps relative to the font
//! size. Columns come from clustering word x-ranges over all body lines (valleys no line
//! crosses are column gaps) and are named by the detected header. Rows are either bands
//! between ruling lines (when the generator drew them) or, with no ruling at all, lines
//! anchored by a SKU or price, with unanchored lines joined to the nearest anchored line as
//! wrapped text or, when they stand alone, taken as category rows.

use std::collections::HashMap;

use super::interp::{Glyph, HRule};
use crate::parse_price;
use crate::table::{Field, classify_header, is_header};

#[derive(Debug, Clone)]
pub(crate) struct Word {
    pub x0: f64,
    pub x1: f64,
    pub size: f64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub y: f64,
    pub size: f64,
    pub words: Vec<Word>,
}

impl Line {
    fn text(&self) -> String {
        self.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// One page ready for table finding.
pub(crate) struct PageLines {
    pub lines: Vec<Line>,
    pub rules: Vec<HRule>,
}

pub(crate) enum Record {
    Category(String),
    Product(Vec<String>),
}

pub(crate) struct Table {
    pub header: Vec<String>,
    pub fields: Vec<Option<Field>>,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone)]
struct Label {
    field: Option<Field>,
    x0: f64,
    x1: f64,
    text: String,
}

#[derive(Debug, Clone)]
struct Column {
    x0: f64,
    x1: f64,
    field: Option<Field>,
    header: String,
}

/// Groups glyphs into lines by baseline and lines into words.
pub(crate) fn build_lines(glyphs: &[Glyph]) -> Vec<Line> {
    let mut order: Vec<&Glyph> = glyphs.iter().collect();
    order.sort_by(|a, b| b.y.total_cmp(&a.y).then(a.x.total_cmp(&b.x)));
    let mut groups: Vec<Vec<&Glyph>> = Vec::new();
    let mut base_y = f64::NAN;
    let mut base_size = 0.0f64;
    for glyph in order {
        let same = groups.last().is_some() && (base_y - glyph.y) <= 0.4 * base_size.max(glyph.size);
        if same {
            if let Some(group) = groups.last_mut() {
                group.push(glyph);
            }
            base_size = base_size.max(glyph.size);
        } else {
            groups.push(vec![glyph]);
            base_y = glyph.y;
            base_size = glyph.size;
        }
    }
    groups
        .into_iter()
        .filter_map(|mut group| {
            group.sort_by(|a, b| a.x.total_cmp(&b.x));
            let words = split_words(&group);
            if words.is_empty() {
                return None;
            }
            let mut sizes: Vec<f64> = words.iter().map(|w| w.size).collect();
            sizes.sort_by(f64::total_cmp);
            let size = sizes.get(sizes.len() / 2).copied().unwrap_or(10.0);
            let y = group.first().map(|g| g.y).unwrap_or(0.0);
            Some(Line { y, size, words })
        })
        .collect()
}

fn split_words(glyphs: &[&Glyph]) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut current: Option<Word> = None;
    let mut last: Option<&Glyph> = None;
    for glyph in glyphs {
        // Fake bold draws every glyph twice, a hair apart: keep one.
        if let Some(prev) = last
            && prev.ch == glyph.ch
            && (glyph.x - prev.x).abs() < 0.2 * glyph.size
        {
            continue;
        }
        last = Some(glyph);
        if glyph.ch.is_whitespace() {
            words.extend(current.take());
            continue;
        }
        if let Some(word) = current.as_mut() {
            let gap = glyph.x - word.x1;
            if gap > 0.25 * glyph.size.max(word.size) || gap < -0.5 * glyph.size {
                words.extend(current.take());
            }
        }
        match current.as_mut() {
            Some(word) => {
                word.text.push(glyph.ch);
                word.x1 = word.x1.max(glyph.x + glyph.width);
                word.size = word.size.max(glyph.size);
            }
            None => {
                current =
                    Some(Word { x0: glyph.x, x1: glyph.x + glyph.width, size: glyph.size, text: glyph.ch.to_string() });
            }
        }
    }
    words.extend(current);
    words
}

/// Words closer than a fraction of the font size form one phrase (a cell's text).
fn phrases(line: &Line) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for word in &line.words {
        match out.last_mut() {
            Some(last) if word.x0 - last.1 < 0.6 * word.size => last.1 = last.1.max(word.x1),
            _ => out.push((word.x0, word.x1)),
        }
    }
    out
}

/// Header labels of a line if it reads as a table header.
fn header_labels(line: &Line) -> Option<Vec<Label>> {
    let mut labels: Vec<Label> = Vec::new();
    for word in &line.words {
        let field = classify_header(&word.text);
        let extend = field.is_none() && labels.last().is_some_and(|l| word.x0 - l.x1 < 1.0 * word.size);
        if extend {
            if let Some(label) = labels.last_mut() {
                label.x1 = word.x1;
                label.text.push(' ');
                label.text.push_str(&word.text);
            }
        } else {
            labels.push(Label { field, x0: word.x0, x1: word.x1, text: word.text.clone() });
        }
    }
    let mut seen: Vec<Field> = Vec::new();
    for label in &mut labels {
        if let Some(field) = label.field {
            if seen.contains(&field) {
                label.field = None;
            } else {
                seen.push(field);
            }
        }
    }
    let map: Vec<Option<Field>> = labels.iter().map(|l| l.field).collect();
    let unnamed = map.iter().filter(|f| f.is_none()).count();
    (is_header(&map) && unnamed <= seen.len()).then_some(labels)
}

/// A line's text with digits folded, to spot running titles and page numbers.
fn line_key(line: &Line) -> String {
    line.text()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect::<String>()
        .split('#')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("#")
}

fn is_page_number(line: &Line) -> bool {
    let text = line.text().to_lowercase();
    let mut rest = text.trim();
    for prefix in ["страница", "стр.", "стр", "page", "с."] {
        if let Some(stripped) = rest.strip_prefix(prefix) {
            rest = stripped.trim_start();
            break;
        }
    }
    let tokens: Vec<&str> = rest.split(|c: char| c.is_whitespace() || c == '/').filter(|t| !t.is_empty()).collect();
    match tokens.as_slice() {
        [n] => n.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '—'),
        [a, sep, b] => {
            a.chars().all(|c| c.is_ascii_digit())
                && matches!(*sep, "из" | "of")
                && b.chars().all(|c| c.is_ascii_digit())
        }
        [a, b] => a.chars().all(|c| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Finds the product table across pages and returns its records in reading order.
pub(crate) fn extract_table(pages: &[PageLines]) -> Option<Table> {
    let headers: Vec<Option<(usize, Vec<Label>)>> = pages
        .iter()
        .map(|page| page.lines.iter().enumerate().find_map(|(idx, line)| header_labels(line).map(|l| (idx, l))))
        .collect();
    let first_header_page = headers.iter().position(Option::is_some)?;
    let labels = headers.get(first_header_page)?.as_ref()?.1.clone();

    // Running titles and footers: the same text (digits aside) near the top or bottom of
    // most pages.
    let n_pages = pages.len();
    let mut key_pages: HashMap<String, usize> = HashMap::new();
    for page in pages {
        let n = page.lines.len();
        let mut keys: Vec<String> = page
            .lines
            .iter()
            .enumerate()
            .filter(|(idx, _)| *idx < 3 || *idx + 3 >= n)
            .map(|(_, line)| line_key(line))
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            *key_pages.entry(key).or_default() += 1;
        }
    }
    let repeated = |idx: usize, n: usize, line: &Line| {
        (idx < 3 || idx + 3 >= n)
            && n_pages >= 2
            && key_pages.get(&line_key(line)).is_some_and(|count| *count >= 2 && *count * 2 >= n_pages)
    };

    let mut bodies: Vec<Vec<&Line>> = Vec::new();
    for (page_idx, page) in pages.iter().enumerate() {
        if page_idx < first_header_page {
            bodies.push(Vec::new());
            continue;
        }
        let start = match headers.get(page_idx).and_then(Option::as_ref) {
            Some((idx, _)) => idx + 1,
            None => 0,
        };
        let n = page.lines.len();
        let body: Vec<&Line> = page
            .lines
            .iter()
            .enumerate()
            .skip(start)
            .filter(|(idx, line)| !repeated(*idx, n, line) && !is_page_number(line) && header_labels(line).is_none())
            .map(|(_, line)| line)
            .collect();
        bodies.push(body);
    }
    let header_line = pages.get(first_header_page)?.lines.get(headers.get(first_header_page)?.as_ref()?.0)?;
    let columns = find_columns(bodies.iter().flatten().copied(), header_line, &labels);
    if columns.is_empty() {
        return None;
    }
    let sku_col = columns.iter().position(|c| c.field == Some(Field::Sku));
    let price_col = columns.iter().position(|c| c.field == Some(Field::Price));
    let name_col = columns.iter().position(|c| c.field == Some(Field::Name));

    let mut records = Vec::new();
    for (page_idx, body) in bodies.iter().enumerate() {
        if body.is_empty() {
            continue;
        }
        let cells: Vec<Vec<String>> = body.iter().map(|line| line_cells(line, &columns)).collect();
        // A row is anchored by a SKU (which nearly always has a digit; a word alone in the
        // SKU column is a category label) or a readable price, and is not prose.
        let anchored: Vec<bool> = cells
            .iter()
            .zip(body)
            .map(|(c, line)| {
                let sku = sku_col.and_then(|i| c.get(i)).map(String::as_str).unwrap_or("");
                let has_sku = sku.chars().any(|ch| ch.is_ascii_digit());
                let has_price = price_col.and_then(|i| c.get(i)).and_then(|s| parse_price(s)).is_some();
                has_sku || (has_price && !is_flowing(line, &columns))
            })
            .collect();
        let header_y = headers
            .get(page_idx)
            .and_then(Option::as_ref)
            .and_then(|(idx, _)| pages.get(page_idx).and_then(|p| p.lines.get(*idx)))
            .map(|line| line.y);
        let rules = pages.get(page_idx).map(|p| p.rules.as_slice()).unwrap_or_default();
        let boundaries = row_boundaries(rules, &columns);
        let n_anchored = anchored.iter().filter(|a| **a).count();
        let top = body.first().map(|l| l.y).unwrap_or(0.0);
        let bottom = body.last().map(|l| l.y).unwrap_or(0.0);
        let inside = boundaries
            .iter()
            .filter(|y| **y <= top + 2.0 * body_size(body) && **y >= bottom - 2.0 * body_size(body))
            .count();
        if inside >= 2 && inside * 2 >= n_anchored {
            band_records(body, &cells, &anchored, &boundaries, header_y, price_col, &mut records);
        } else {
            let name_x0 = name_col.and_then(|i| columns.get(i)).map(|c| c.x0);
            loose_records(body, &cells, &anchored, &columns, name_x0, price_col, &mut records);
        }
    }
    Some(Table {
        header: columns.iter().map(|c| c.header.clone()).collect(),
        fields: columns.iter().map(|c| c.field).collect(),
        records,
    })
}

fn body_size(body: &[&Line]) -> f64 {
    let mut sizes: Vec<f64> = body.iter().map(|l| l.size).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.get(sizes.len() / 2).copied().unwrap_or(10.0)
}

/// Column x-ranges from the valleys of word coverage, named by the header labels.
fn find_columns<'l>(body: impl Iterator<Item = &'l Line>, header: &'l Line, labels: &[Label]) -> Vec<Column> {
    let lines: Vec<&Line> = std::iter::once(header).chain(body).collect();
    let min_x = lines.iter().flat_map(|l| l.words.iter().map(|w| w.x0)).fold(f64::INFINITY, f64::min);
    let max_x = lines.iter().flat_map(|l| l.words.iter().map(|w| w.x1)).fold(f64::NEG_INFINITY, f64::max);
    if !(min_x.is_finite() && max_x.is_finite()) || max_x <= min_x {
        return Vec::new();
    }
    let n_bins = ((max_x - min_x).ceil() as usize).clamp(1, 4000);
    let bin_width = (max_x - min_x) / n_bins as f64;
    let bin_of = |x: f64| (((x - min_x) / bin_width).floor().max(0.0) as usize).min(n_bins - 1);
    let mut coverage = vec![0usize; n_bins];
    for line in &lines {
        for (x0, x1) in phrases(line) {
            for slot in coverage.iter_mut().take(bin_of(x1) + 1).skip(bin_of(x0)) {
                *slot += 1;
            }
        }
    }
    // A few lines (category rows, titles) may cross a column gap; real cells never do.
    let threshold = (lines.len() / 20).max(1);
    let mut intervals: Vec<(f64, f64)> = Vec::new();
    let mut run_start: Option<usize> = None;
    for idx in 0..=n_bins {
        let covered = coverage.get(idx).is_some_and(|c| *c > threshold);
        match (covered, run_start) {
            (true, None) => run_start = Some(idx),
            (false, Some(start)) => {
                intervals.push((min_x + start as f64 * bin_width, min_x + idx as f64 * bin_width));
                run_start = None;
            }
            _ => {}
        }
    }
    let mut columns: Vec<Column> =
        intervals.into_iter().map(|(x0, x1)| Column { x0, x1, field: None, header: String::new() }).collect();
    // Each header label names the interval it overlaps most; a label over a gap gets its own.
    let mut owners: Vec<Vec<&Label>> = vec![Vec::new(); columns.len()];
    let mut extra: Vec<Column> = Vec::new();
    for label in labels {
        let best = columns
            .iter()
            .enumerate()
            .map(|(idx, c)| (idx, label.x1.min(c.x1) - label.x0.max(c.x0)))
            .filter(|(_, overlap)| *overlap > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((idx, _)) => {
                if let Some(owner) = owners.get_mut(idx) {
                    owner.push(label);
                }
            }
            None => extra.push(Column { x0: label.x0, x1: label.x1, field: label.field, header: label.text.clone() }),
        }
    }
    let mut result: Vec<Column> = Vec::new();
    for (column, owner) in columns.iter_mut().zip(owners) {
        match owner.as_slice() {
            [] => result.push(column.clone()),
            [label] => result.push(Column { field: label.field, header: label.text.clone(), ..column.clone() }),
            several => {
                // Two headers over one run of text: the run is really two columns that no
                // valley separated, so cut it between the labels.
                let mut x0 = column.x0;
                for (idx, label) in several.iter().enumerate() {
                    let x1 = match several.get(idx + 1) {
                        Some(next) => (label.x1 + next.x0) / 2.0,
                        None => column.x1,
                    };
                    result.push(Column { x0, x1, field: label.field, header: label.text.clone() });
                    x0 = x1;
                }
            }
        }
    }
    result.extend(extra);
    result.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    result
}

/// Whether two neighbouring words are separated by an ordinary word space, not a cell gap.
fn glued(left: &Word, right: &Word) -> bool {
    right.x0 - left.x1 < 0.45 * left.size.max(right.size)
}

/// The column of each word: the interval its center falls in; a word in a valley between
/// intervals (the tail of an unusually long name) follows the word it is glued to.
fn word_columns(line: &Line, columns: &[Column]) -> Vec<usize> {
    let placed: Vec<(usize, bool)> = line
        .words
        .iter()
        .map(|word| {
            let center = (word.x0 + word.x1) / 2.0;
            columns
                .iter()
                .enumerate()
                .map(|(idx, c)| {
                    let distance = if center < c.x0 {
                        c.x0 - center
                    } else if center > c.x1 {
                        center - c.x1
                    } else {
                        0.0
                    };
                    (idx, distance)
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(idx, distance)| (idx, distance == 0.0))
                .unwrap_or((0, false))
        })
        .collect();
    let mut result: Vec<usize> = placed.iter().map(|(idx, _)| *idx).collect();
    for idx in 0..line.words.len() {
        if placed.get(idx).is_some_and(|(_, inside)| *inside) {
            continue;
        }
        let (Some(word), prev, next) =
            (line.words.get(idx), idx.checked_sub(1).and_then(|i| line.words.get(i)), line.words.get(idx + 1))
        else {
            continue;
        };
        if let Some(prev) = prev
            && glued(prev, word)
            && let Some(col) = idx.checked_sub(1).and_then(|i| result.get(i)).copied()
        {
            if let Some(slot) = result.get_mut(idx) {
                *slot = col;
            }
        } else if let Some(next) = next
            && glued(word, next)
            && placed.get(idx + 1).is_some_and(|(_, inside)| *inside)
            && let Some(col) = placed.get(idx + 1).map(|(c, _)| *c)
            && let Some(slot) = result.get_mut(idx)
        {
            *slot = col;
        }
    }
    result
}

/// Text that runs across a column gap with ordinary word spacing is prose (a note, a
/// category label), not a table row.
fn is_flowing(line: &Line, columns: &[Column]) -> bool {
    let cols = word_columns(line, columns);
    line.words.windows(2).zip(cols.windows(2)).any(|(words, cols)| match (words, cols) {
        ([a, b], [ca, cb]) => ca != cb && glued(a, b),
        _ => false,
    })
}

/// Splits a line's words into cells by column.
fn line_cells(line: &Line, columns: &[Column]) -> Vec<String> {
    let mut cells = vec![String::new(); columns.len()];
    for (word, col) in line.words.iter().zip(word_columns(line, columns)) {
        if let Some(cell) = cells.get_mut(col) {
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(&word.text);
        }
    }
    cells
}

/// Y positions of horizontal rules that run across a good part of the table, top first.
fn row_boundaries(rules: &[HRule], columns: &[Column]) -> Vec<f64> {
    let (Some(first), Some(last)) = (columns.first(), columns.last()) else { return Vec::new() };
    let (left, right) = (first.x0, last.x1);
    let width = (right - left).max(1.0);
    let mut relevant: Vec<HRule> = rules.iter().filter(|r| r.x1 > left - 5.0 && r.x0 < right + 5.0).copied().collect();
    relevant.sort_by(|a, b| b.y.total_cmp(&a.y));
    let mut boundaries = Vec::new();
    let mut idx = 0;
    while idx < relevant.len() {
        let y = relevant.get(idx).map(|r| r.y).unwrap_or(0.0);
        let mut covered = 0.0;
        let mut end = idx;
        while let Some(rule) = relevant.get(end) {
            if (y - rule.y).abs() > 1.0 {
                break;
            }
            covered += rule.x1.min(right + 5.0) - rule.x0.max(left - 5.0);
            end += 1;
        }
        if covered >= 0.3 * width {
            boundaries.push(y);
        }
        idx = end.max(idx + 1);
    }
    boundaries
}

fn merge_cells(target: &mut [String], source: &[String]) {
    for (cell, add) in target.iter_mut().zip(source) {
        if add.is_empty() {
            continue;
        }
        if !cell.is_empty() {
            cell.push(' ');
        }
        cell.push_str(add);
    }
}

fn record_for(cells: Vec<String>, anchored: bool, price_col: Option<usize>) -> Option<Record> {
    let filled: Vec<&String> = cells.iter().filter(|c| !c.is_empty()).collect();
    if filled.is_empty() {
        return None;
    }
    let price_empty = price_col.and_then(|i| cells.get(i)).is_none_or(|c| c.is_empty());
    // A label spanning the table may spill over two column ranges; without a price or an
    // anchor it is still one category label.
    if !anchored && (filled.len() == 1 || (filled.len() == 2 && price_empty)) {
        let text = filled.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ");
        return Some(Record::Category(text));
    }
    Some(Record::Product(cells))
}

/// Rows as the bands between ruling lines: every line in a band belongs to one row, which
/// also handles cells whose text is vertically centred next to a wrapped neighbour.
fn band_records(
    body: &[&Line],
    cells: &[Vec<String>],
    anchored: &[bool],
    boundaries: &[f64],
    header_y: Option<f64>,
    price_col: Option<usize>,
    records: &mut Vec<Record>,
) {
    let band_of = |y: f64| boundaries.iter().filter(|b| **b > y).count();
    let header_band = header_y.map(band_of);
    let mut current: Option<(usize, Vec<String>, bool)> = None;
    for ((line, line_cells), is_anchored) in body.iter().zip(cells).zip(anchored) {
        let band = band_of(line.y);
        // Above the first rule or below the last one is outside the table.
        if band == 0 || band >= boundaries.len() || Some(band) == header_band {
            continue;
        }
        match current.as_mut() {
            Some((current_band, acc, acc_anchored)) if *current_band == band => {
                merge_cells(acc, line_cells);
                *acc_anchored |= *is_anchored;
            }
            _ => {
                if let Some((_, acc, acc_anchored)) = current.take() {
                    records.extend(record_for(acc, acc_anchored, price_col));
                }
                current = Some((band, line_cells.clone(), *is_anchored));
            }
        }
    }
    if let Some((_, acc, acc_anchored)) = current {
        records.extend(record_for(acc, acc_anchored, price_col));
    }
}

/// Rows without ruling: anchored lines start rows, nearby unanchored lines are wrapped text
/// of the closest anchored line, lone labels are categories, far-away text is page furniture.
fn loose_records(
    body: &[&Line],
    cells: &[Vec<String>],
    anchored: &[bool],
    columns: &[Column],
    name_x0: Option<f64>,
    price_col: Option<usize>,
    records: &mut Vec<Record>,
) {
    let size = body_size(body);
    let mut gaps: Vec<f64> = body
        .windows(2)
        .filter_map(|pair| match pair {
            [a, b] => Some(a.y - b.y),
            _ => None,
        })
        .filter(|gap| *gap > 0.3 * size)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let line_height = gaps.get(gaps.len() / 2).copied().unwrap_or(1.2 * size).clamp(0.8 * size, 3.0 * size);
    let reach = 1.6 * line_height;
    let anchors: Vec<usize> = (0..body.len()).filter(|i| anchored.get(*i).copied().unwrap_or(false)).collect();
    // For every anchored line, the lines that make up its row.
    let mut members: HashMap<usize, Vec<usize>> = anchors.iter().map(|a| (*a, vec![*a])).collect();
    enum Kind {
        Anchor,
        Category,
        Joined,
        Dropped,
    }
    let mut kinds: Vec<Kind> = Vec::with_capacity(body.len());
    for (idx, line) in body.iter().enumerate() {
        if anchored.get(idx).copied().unwrap_or(false) {
            kinds.push(Kind::Anchor);
            continue;
        }
        // Anchors are sorted: binary search keeps huge hostile pages linear-logarithmic.
        let split = anchors.partition_point(|a| *a < idx);
        let prev = split.checked_sub(1).and_then(|i| anchors.get(i)).copied();
        let next = anchors.get(split).copied();
        let distance =
            |a: Option<usize>| a.and_then(|a| body.get(a)).map(|l| (l.y - line.y).abs()).unwrap_or(f64::INFINITY);
        let (d_prev, d_next) = (distance(prev), distance(next));
        let line_phrases = phrases(line);
        let touched = line_cells_count(line, columns);
        let starts_left = match (name_x0, line_phrases.first()) {
            (Some(name_x0), Some(first)) => first.0 < name_x0 - 0.5 * line.size,
            _ => false,
        };
        let near = d_prev <= reach || d_next <= reach;
        if line_phrases.len() == 1 && (starts_left || touched > 1 || !near) {
            // Below the last row of the page and far from it: a footer, not a category.
            if next.is_none() && d_prev > 2.5 * line_height {
                kinds.push(Kind::Dropped);
            } else {
                kinds.push(Kind::Category);
            }
        } else if near {
            let owner = if d_prev <= d_next { prev } else { next };
            if let Some(owner) = owner
                && let Some(list) = members.get_mut(&owner)
            {
                list.push(idx);
            }
            kinds.push(Kind::Joined);
        } else {
            kinds.push(Kind::Dropped);
        }
    }
    for (idx, kind) in kinds.iter().enumerate() {
        match kind {
            Kind::Anchor => {
                let mut list = members.remove(&idx).unwrap_or_default();
                list.sort_unstable();
                let mut acc = vec![String::new(); columns.len()];
                for member in list {
                    if let Some(c) = cells.get(member) {
                        merge_cells(&mut acc, c);
                    }
                }
                records.extend(record_for(acc, true, price_col));
            }
            Kind::Category => {
                if let Some(line) = body.get(idx) {
                    records.push(Record::Category(line.text()));
                }
            }
            Kind::Joined | Kind::Dropped => {}
        }
    }
}

fn line_cells_count(line: &Line, columns: &[Column]) -> usize {
    line_cells(line, columns).iter().filter(|c| !c.is_empty()).count()
}
