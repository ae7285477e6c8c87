//! Spreadsheets (XLSX, XLS, ODS) through calamine, with zip-bomb and disguised-file checks first.

use std::io::Cursor;

use calamine::{Data, DataRef, Dimensions, Ods, Reader, Xls, Xlsx};

use crate::price::format_float;
use crate::table::{TableBuilder, find_header};
use crate::{CatalogError, Conversion, Limits, SourceKind, guard};

/// How many leading rows of a sheet may hold a title before the header.
const HEADER_SEARCH_ROWS: usize = 60;
/// Columns read per sheet; price lists are narrow and a wider sheet is most likely hostile.
const MAX_COLUMNS: usize = 256;
/// A zip entry inflating more than this many times its compressed size is a bomb.
const MAX_RATIO: u64 = 200;

type Grid = Vec<Vec<String>>;

pub(crate) fn convert(bytes: &[u8], kind: SourceKind, limits: &Limits) -> Result<Conversion, CatalogError> {
    let what = kind.as_str().to_uppercase();
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    let head = bytes.get(start..start.saturating_add(64).min(bytes.len())).unwrap_or_default();
    let head_text = String::from_utf8_lossy(head).to_lowercase();
    let head_text = head_text.trim_start_matches('\u{feff}');
    if head_text.starts_with('<') {
        return Err(CatalogError::Unsupported(format!(
            "this .{} file is really an HTML or XML document (often a web export saved with a spreadsheet name); open it in Excel and save as .xlsx",
            kind.as_str()
        )));
    }
    let sheets: Vec<(String, Grid)> = match kind {
        SourceKind::Xlsx | SourceKind::Ods => {
            if !bytes.starts_with(b"PK") {
                return Err(CatalogError::Corrupt(format!("{what} file: it is not a zip container")));
            }
            check_zip(bytes, limits)?;
            if kind == SourceKind::Xlsx {
                guard(&what, || read_xlsx(bytes, limits))?
            } else {
                guard(&what, || read_ods(bytes, limits))?
            }
        }
        SourceKind::Xls => {
            if !bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
                if bytes.starts_with(b"PK") {
                    return Err(CatalogError::Unsupported(
                        "this .xls file is really an .xlsx workbook; rename it to .xlsx".to_string(),
                    ));
                }
                return Err(CatalogError::Corrupt("XLS file: it is not an Excel 97-2003 workbook".to_string()));
            }
            guard(&what, || read_xls(bytes, limits))?
        }
        SourceKind::Csv | SourceKind::Pdf => {
            return Err(CatalogError::Unsupported(format!("{} is not a spreadsheet", kind.as_str())));
        }
    };
    let mut warnings = Vec::new();
    let mut rows = Vec::new();
    let table_sheets: Vec<usize> = sheets
        .iter()
        .enumerate()
        .filter(|(_, (_, grid))| find_header(grid, HEADER_SEARCH_ROWS).is_some())
        .map(|(idx, _)| idx)
        .collect();
    if table_sheets.is_empty() {
        return Err(CatalogError::NoTable(
            "no sheet has a header row with column names such as Артикул, Наименование, Цена".to_string(),
        ));
    }
    for (name, grid) in &sheets {
        let Some((header_idx, map)) = find_header(grid, HEADER_SEARCH_ROWS) else {
            if grid.iter().any(|r| r.iter().any(|c| !c.is_empty())) {
                warnings.push(format!("sheet «{name}» has no product table and was skipped"));
            }
            continue;
        };
        let header = grid.get(header_idx).cloned().unwrap_or_default();
        let mut builder = TableBuilder::new(&header, map, limits);
        if table_sheets.len() > 1 {
            // With several product sheets the sheet name is usually the product group.
            builder.set_default_category(name);
        }
        for cells in grid.iter().skip(header_idx + 1) {
            limits.check_deadline()?;
            builder.push_cells(cells)?;
        }
        if rows.len() + builder.rows.len() > limits.max_rows {
            return Err(CatalogError::TooLarge(format!("more than {} product rows", limits.max_rows)));
        }
        rows.extend(builder.rows);
    }
    Ok(Conversion { rows, warnings, pipeline: "calamine" })
}

/// Reads the zip central directory only and rejects archives that would inflate too much.
fn check_zip(bytes: &[u8], limits: &Limits) -> Result<(), CatalogError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|error| CatalogError::Corrupt(format!("spreadsheet: broken zip container ({error})")))?;
    let mut total: u64 = 0;
    for idx in 0..archive.len() {
        let Ok(file) = archive.by_index_raw(idx) else { continue };
        let size = file.size();
        let compressed = file.compressed_size().max(1);
        total = total.saturating_add(size);
        if size > 1024 * 1024 && size / compressed > MAX_RATIO {
            return Err(CatalogError::TooLarge(format!(
                "the archive entry {} would inflate {}×, which looks like a zip bomb",
                file.name().unwrap_or_default(),
                size / compressed
            )));
        }
    }
    if total > limits.max_decompressed_bytes {
        return Err(CatalogError::TooLarge(format!(
            "the archive would inflate to {total} bytes, more than the {} allowed",
            limits.max_decompressed_bytes
        )));
    }
    Ok(())
}

fn read_xlsx(bytes: &[u8], limits: &Limits) -> Result<Vec<(String, Grid)>, CatalogError> {
    let corrupt = |error: calamine::XlsxError| CatalogError::Corrupt(format!("XLSX file ({error})"));
    let mut workbook = Xlsx::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut sheets = Vec::new();
    for name in workbook.sheet_names() {
        limits.check_deadline()?;
        // Cells are streamed into a bounded grid: calamine's own Range would allocate the
        // full declared rectangle, which a hostile sheet can make astronomically large.
        let mut grid: Grid = Vec::new();
        {
            let mut reader = workbook.worksheet_cells_reader(&name).map_err(corrupt)?;
            let mut n_cells: usize = 0;
            while let Some(cell) = reader.next_cell().map_err(corrupt)? {
                n_cells += 1;
                if n_cells.is_multiple_of(65_536) {
                    limits.check_deadline()?;
                }
                let (row, col) = cell.get_position();
                let text = data_ref_text(cell.get_value());
                if text.is_empty() {
                    continue;
                }
                put(&mut grid, row as usize, col as usize, text, limits)?;
            }
        }
        let merges = workbook.merge_cells_by_sheet_name(&name).unwrap_or_default();
        fill_merges(&mut grid, &merges);
        sheets.push((name, grid));
    }
    Ok(sheets)
}

fn read_xls(bytes: &[u8], limits: &Limits) -> Result<Vec<(String, Grid)>, CatalogError> {
    let corrupt = |error: calamine::XlsError| CatalogError::Corrupt(format!("XLS file ({error})"));
    let mut workbook = Xls::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut sheets = Vec::new();
    for name in workbook.sheet_names() {
        limits.check_deadline()?;
        let range = workbook.worksheet_range(&name).map_err(corrupt)?;
        let mut grid = range_grid(&range, limits)?;
        let merges = workbook.merge_cells_by_sheet_name(&name).unwrap_or_default();
        let offset = range.start().unwrap_or((0, 0));
        fill_merges_offset(&mut grid, &merges, offset);
        sheets.push((name, grid));
    }
    Ok(sheets)
}

fn read_ods(bytes: &[u8], limits: &Limits) -> Result<Vec<(String, Grid)>, CatalogError> {
    let corrupt = |error: calamine::OdsError| CatalogError::Corrupt(format!("ODS file ({error})"));
    let mut workbook = Ods::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut sheets = Vec::new();
    for name in workbook.sheet_names() {
        limits.check_deadline()?;
        let range = workbook.worksheet_range(&name).map_err(corrupt)?;
        sheets.push((name, range_grid(&range, limits)?));
    }
    Ok(sheets)
}

fn range_grid(range: &calamine::Range<Data>, limits: &Limits) -> Result<Grid, CatalogError> {
    let mut grid = Grid::new();
    for (row_idx, row) in range.rows().enumerate() {
        if row_idx.is_multiple_of(4096) {
            limits.check_deadline()?;
        }
        for (col_idx, value) in row.iter().enumerate() {
            let text = data_text(value);
            if !text.is_empty() {
                put(&mut grid, row_idx, col_idx, text, limits)?;
            }
        }
    }
    Ok(grid)
}

/// Stores one cell, growing the grid within the row and column bounds.
fn put(grid: &mut Grid, row: usize, col: usize, text: String, limits: &Limits) -> Result<(), CatalogError> {
    if col >= MAX_COLUMNS {
        return Ok(());
    }
    if row > limits.max_rows.saturating_add(HEADER_SEARCH_ROWS) {
        return Err(CatalogError::TooLarge(format!("a sheet has more than {} rows", limits.max_rows)));
    }
    if grid.len() <= row {
        grid.resize_with(row + 1, Vec::new);
    }
    if let Some(cells) = grid.get_mut(row) {
        if cells.len() <= col {
            cells.resize(col + 1, String::new());
        }
        if let Some(cell) = cells.get_mut(col) {
            *cell = text;
        }
    }
    Ok(())
}

fn fill_merges(grid: &mut Grid, merges: &[Dimensions]) {
    fill_merges_offset(grid, merges, (0, 0));
}

/// Copies each merged region's top-left value into the rest of the region.
fn fill_merges_offset(grid: &mut Grid, merges: &[Dimensions], offset: (u32, u32)) {
    for merge in merges {
        let (Some(top), Some(left)) = (merge.start.0.checked_sub(offset.0), merge.start.1.checked_sub(offset.1)) else {
            continue;
        };
        let (top, left) = (top as usize, left as usize);
        let bottom = (merge.end.0.saturating_sub(offset.0) as usize).min(grid.len().saturating_sub(1));
        let right = (merge.end.1.saturating_sub(offset.1) as usize).min(MAX_COLUMNS - 1);
        let Some(value) = grid.get(top).and_then(|r| r.get(left)).cloned() else { continue };
        if value.is_empty() {
            continue;
        }
        for row in grid.iter_mut().take(bottom + 1).skip(top) {
            if row.len() <= right {
                row.resize(right + 1, String::new());
            }
            for cell in row.iter_mut().take(right + 1).skip(left) {
                if cell.is_empty() {
                    cell.clone_from(&value);
                }
            }
        }
    }
}

fn data_text(value: &Data) -> String {
    match value {
        Data::Int(i) => i.to_string(),
        Data::Float(f) => format_float(*f),
        Data::String(s) => s.clone(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => dt.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(_) | Data::Empty => String::new(),
    }
}

fn data_ref_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => format_float(*f),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => s.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(dt) => dt.to_string(),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(_) | DataRef::Empty => String::new(),
    }
}
