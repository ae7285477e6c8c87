#!/usr/bin/env bash
# Catalog conversion benchmark: our converter vs pdfplumber, `pdftotext -layout` and xlsx2csv.
#
# Usage: benches/catalog_bench.sh [CONVERT_BINARY]
#   CONVERT_BINARY defaults to the release build of crates/avio-catalog/examples/convert
#   (built here when missing). ROWS (default 1500) and RUNS (default 3) tune the run.
# Needs: python3 with openpyxl reportlab pdfplumber xlsx2csv; libreoffice-calc,
# poppler-utils, fonts-dejavu-core (see tests/catalog_corpus/README.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-1500}
RUNS=${RUNS:-3}
BIN=${1:-}
if [[ -z "$BIN" ]]; then
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    BIN=$TARGET/release/examples/convert
    if [[ ! -x "$BIN" ]]; then
        (cd "$ROOT/crates/avio-catalog" && cargo build --release --example convert)
    fi
fi
[[ -x "$BIN" ]] || { echo "convert binary not found: $BIN" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "generating a $ROWS-row corpus ..." >&2
python3 "$ROOT/tests/catalog_corpus/generate.py" --rows "$ROWS" --out "$WORK" --only xlsx,pdf_lo,pdf_rl >/dev/null

python3 - "$BIN" "$WORK" "$RUNS" <<'PY'
import csv, io, statistics, subprocess, sys, time

binary, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
truth = {r["sku"]: r for r in csv.DictReader(open(f"{work}/truth.csv", encoding="utf-8"))}

def fold(s):
    return " ".join((s or "").split())

def norm_price(text):
    """Enough of parse_price for scoring a peer: '30,490.90 ₽' / '30 490,90 ₽' -> '30490.9'."""
    t = (text or "").replace("\u00a0", "").replace("\u2009", "").replace("\u202f", "").replace(" ", "")
    t = t.replace("₽", "").replace("руб.", "").strip()
    if not t or not any(c.isdigit() for c in t):
        return None
    if "," in t and "." in t:
        t = t.replace(",", "")
    elif "," in t:
        head, _, tail = t.rpartition(",")
        t = t.replace(",", "") if len(tail) == 3 else head.replace(",", "") + "." + tail
    try:
        v = float(t)
    except ValueError:
        return None
    return (f"{v:.2f}").rstrip("0").rstrip(".")

def timed(fn):
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result

def ours(path):
    out = subprocess.run([binary, path], check=True, capture_output=True).stdout.decode("utf-8")
    return list(csv.DictReader(io.StringIO(out)))

def score_rows(rows):
    sku = name = price = 0
    by_sku = {r["sku"]: r for r in rows}
    for key, want in truth.items():
        got = by_sku.get(key)
        if not got:
            continue
        sku += 1
        name += fold(got["name"]) == fold(want["name"])
        price += got["price"] == want["price"]
    n = len(truth)
    return 100.0 * (sku + name + price) / (3 * n)

def plumber(path):
    import pdfplumber
    rows = []
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            for table in page.extract_tables():
                rows.extend(table)
    return rows

def score_plumber(rows):
    # Lenient on purpose: a truth row counts when any cell holds its sku, name or price.
    sku = name = price = 0
    seen = set()
    for cells in rows:
        cells = [c or "" for c in cells]
        key = next((fold(c) for c in cells if fold(c) in truth), None)
        if key is None or key in seen:
            continue
        seen.add(key)
        want = truth[key]
        sku += 1
        name += any(fold(c) == fold(want["name"]) for c in cells)
        price += any(norm_price(c) == want["price"] for c in cells)
    return 100.0 * (sku + name + price) / (3 * len(truth))

def pdftotext(path):
    subprocess.run(["pdftotext", "-layout", path, "-"], check=True, capture_output=True)

print(f"rows in truth: {len(truth)}; median of {runs} runs; wall-clock seconds incl. process start for CLIs")
print(f"{'PDF':<24}{'ours s':>9}{'pdfplumber s':>14}{'pdftotext s':>13}{'× plumber':>11}{'/ pdftotext':>13}{'ours acc %':>12}{'plumber acc %':>15}")
for label, name in [("LibreOffice (no rules)", "price_libreoffice.pdf"), ("reportlab (ruled)", "price_reportlab.pdf")]:
    path = f"{work}/{name}"
    t_ours, rows = timed(lambda: ours(path))
    # pdfplumber runs once: it is slow, and its import is not counted (in-process).
    start = time.perf_counter()
    prow = plumber(path)
    t_plumber = time.perf_counter() - start
    t_text, _ = timed(lambda: pdftotext(path))
    print(f"{label:<24}{t_ours:>9.3f}{t_plumber:>14.3f}{t_text:>13.3f}{t_plumber / t_ours:>10.1f}×{t_ours / t_text:>12.2f}×"
          f"{score_rows(rows):>12.2f}{score_plumber(prow):>15.2f}")

print()
print(f"{'XLSX':<24}{'ours s':>9}{'xlsx2csv s':>14}{'× xlsx2csv':>13}{'ours acc %':>12}")
path = f"{work}/price.xlsx"
t_ours, rows = timed(lambda: ours(path))
t_x2c, _ = timed(lambda: subprocess.run(["xlsx2csv", path], check=True, capture_output=True))
print(f"{'openpyxl workbook':<24}{t_ours:>9.3f}{t_x2c:>14.3f}{t_x2c / t_ours:>12.1f}×{score_rows(rows):>12.2f}")
PY
