#!/usr/bin/env python3
"""Generate the catalog conversion corpus: ground truth plus renderings of it.

The same product list (Cyrillic names with «», × and quotes, prices with kopecks,
category rows, units, stock) is rendered the ways real price lists arrive:

  xlsx        openpyxl workbook: title rows, merged title, money format, category rows
  xls, ods    LibreOffice conversions of that workbook
  pdf_lo      LibreOffice PDF of that workbook (no ruling lines, header repeated)
  pdf_rl      reportlab table, DejaVu TTF, prices as text, ruled grid, page header/footer
  pdf_chrome  Chromium print of an HTML table: category rows span the table, names wrap
  csv_1c      Windows-1251 ';' CSV like a 1C export, decimal commas

Usage: generate.py [--rows N] [--out DIR] [--only a,b,c] [--seed S]
"""

import argparse
import csv
import html
import os
import random
import shutil
import subprocess
import sys
import tempfile

GENERATORS = ["xlsx", "xls", "ods", "pdf_lo", "pdf_rl", "pdf_chrome", "csv_1c"]
HEADER = ["sku", "name", "category", "price", "currency", "unit", "stock", "url", "description"]
COMPANY = "ООО «Мебельный двор»"

CATEGORIES = [
    ("Диваны", "ДВ", ["Диван угловой", "Диван-кровать", "Диван прямой", "Софа"]),
    ("Кресла", "KR", ["Кресло", "Кресло-качалка", "Кресло мешок", "Кресло офисное"]),
    ("Столы обеденные", "СТ", ["Стол обеденный", "Стол раздвижной", "Стол журнальный"]),
    ("Стулья", "ST", ["Стул", "Табурет", "Стул барный"]),
    ("Шкафы-купе", "ШК", ["Шкаф-купе", "Шкаф распашной", "Стеллаж"]),
    ("Кровати", "KRV", ["Кровать двуспальная", "Кровать детская", "Кровать-чердак"]),
    ("Матрасы", "MT", ["Матрас ортопедический", "Матрас беспружинный", "Наматрасник"]),
    ("Освещение и декор", "ОС", ["Торшер", "Люстра", "Зеркало настенное", "Светильник"]),
]
MODELS = ["Лего", "Венеция", "Нордик", "Прованс", "Лофт", "Орион", "Бергамо", "Марсель",
          "Сканди", "Ривьера", "Оскар", "Модерн", "Честер", "Берн", "Токио", "Милан"]
MATERIALS = ["дуб сонома", "серый велюр", "экокожа, чёрная", "бук", "орех", "белый глянец",
             "массив сосны", "рогожка бежевая", "металл/стекло", "ткань «Бархат»"]
UNITS = ["шт", "шт", "шт", "компл.", "пог. м", "кв. м"]
LONG_TAILS = [
    "с ящиком для белья и подъёмным механизмом, ткань рогожка",
    "с зеркалом и антресолью, фасады МДФ, фурнитура Blum",
    "двухсторонний, независимый пружинный блок, высота 24 см",
    "на металлическом каркасе, столешница из закалённого стекла",
]


def make_truth(n_rows, seed):
    rng = random.Random(seed)
    rows = []
    per_cat = max(1, n_rows // len(CATEGORIES))
    serial = 100
    for cat_idx, (category, prefix, kinds) in enumerate(CATEGORIES):
        count = per_cat if cat_idx < len(CATEGORIES) - 1 else n_rows - per_cat * (len(CATEGORIES) - 1)
        for _ in range(count):
            serial += rng.randint(1, 7)
            kind = rng.choice(kinds)
            model = rng.choice(MODELS)
            roll = rng.random()
            if roll < 0.25:
                w, d = rng.choice([(2, "1,6"), (1, "0,9"), (3, "2,2"), (2, "1,8")])
                name = f"{kind} «{model}» {w}×{d} м"
            elif roll < 0.45:
                name = f'{kind} "{model}", {rng.choice(MATERIALS)}'
            elif roll < 0.6:
                a, b, c = rng.choice([(1200, 600, 750), (2400, 600, 2200), (800, 800, 450)])
                name = f"{kind} «{model}» {a}×{b}×{c} мм, {rng.choice(MATERIALS)}"
            elif roll < 0.72:
                name = f"{kind} «{model}» {rng.choice(LONG_TAILS)}"
            else:
                name = f"{kind} «{model}»"
            rub = rng.choice([rng.randint(5, 99) * 100 - 10, rng.randint(1, 250) * 1000 + rng.choice([0, 490, 990]),
                              rng.randint(100, 999)])
            kop = rng.choice([0, 0, 0, 50, 90, 99])
            price = f"{rub}.{kop:02d}".rstrip("0").rstrip(".") if kop else str(rub)
            rows.append({
                "sku": f"{prefix}-{serial:05d}",
                "name": name,
                "category": category,
                "price": price,
                "currency": "RUB",
                "unit": rng.choice(UNITS),
                "stock": str(rng.choice([0, rng.randint(1, 40), rng.randint(100, 2500)])),
                "url": "",
                "description": "",
            })
    return rows


def groups(rows):
    out = []
    for row in rows:
        if not out or out[-1][0] != row["category"]:
            out.append((row["category"], []))
        out[-1][1].append(row)
    return out


def ru_money(price, space="\u00a0", sign=" ₽"):
    """12990.5 -> '12 990,50 ₽' with the given grouping space."""
    value = float(price)
    whole = int(value)
    kop = round((value - whole) * 100)
    grouped = f"{whole:,}".replace(",", space)
    return f"{grouped},{kop:02d}{sign}" if kop else f"{grouped}{sign}"


def write_truth(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def gen_xlsx(rows, path):
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.properties import PageSetupProperties

    wb = Workbook()
    ws = wb.active
    ws.title = "Прайс"
    ws.merge_cells("A1:E1")
    ws["A1"] = f"Прайс-лист {COMPANY}"
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws["A2"] = "Цены указаны в рублях с НДС, действительны с 01.03.2025"
    header = ["Артикул", "Наименование", "Ед. изм.", "Цена, руб.", "Остаток"]
    ws.append([])
    ws.append(header)
    for cell in ws[4]:
        cell.font = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for category, items in groups(rows):
        ws.append([category])
        r = ws.max_row
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=5)
        ws.cell(r, 1).font = Font(bold=True)
        ws.cell(r, 1).fill = fill
        for row in items:
            ws.append([row["sku"], row["name"], row["unit"], float(row["price"]), int(row["stock"])])
            ws.cell(ws.max_row, 4).number_format = '#,##0.00" ₽"'
    for col, width in zip("ABCDE", [12, 86, 9, 15, 9]):
        ws.column_dimensions[col].width = width
    ws.print_title_rows = "4:4"
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.page_setup.orientation = "portrait"
    wb.create_sheet("Условия")["A1"] = "Доставка по Москве бесплатно от 30 000 ₽"
    wb.save(path)


def soffice(src, fmt, outdir):
    profile = tempfile.mkdtemp(prefix="lo-profile-")
    try:
        subprocess.run(
            ["libreoffice", f"-env:UserInstallation=file://{profile}", "--headless",
             "--convert-to", fmt, "--outdir", outdir, src],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def find_font(name):
    for base in ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu"]:
        path = os.path.join(base, name)
        if os.path.exists(path):
            return path
    sys.exit(f"font {name} not found: install fonts-dejavu-core")


def gen_reportlab(rows, path):
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import SimpleDocTemplate, Table, TableStyle

    pdfmetrics.registerFont(TTFont("DejaVu", find_font("DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuBold", find_font("DejaVuSans-Bold.ttf")))
    data = [["Артикул", "Наименование", "Ед.", "Цена", "Наличие"]]
    style = [
        ("FONT", (0, 0), (-1, -1), "DejaVu", 8),
        ("FONT", (0, 0), (-1, 0), "DejaVuBold", 8),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("ALIGN", (3, 1), (3, -1), "RIGHT"),
        ("ALIGN", (4, 1), (4, -1), "RIGHT"),
    ]
    for category, items in groups(rows):
        data.append([category, "", "", "", ""])
        r = len(data) - 1
        style += [("SPAN", (0, r), (-1, r)), ("FONT", (0, r), (-1, r), "DejaVuBold", 9),
                  ("BACKGROUND", (0, r), (-1, r), colors.HexColor("#EEEEEE"))]
        for row in items:
            data.append([row["sku"], row["name"], row["unit"], ru_money(row["price"], "\u00a0"),
                         row["stock"]])
    table = Table(data, colWidths=[22 * mm, 150 * mm, 16 * mm, 30 * mm, 18 * mm], repeatRows=1)
    table.setStyle(TableStyle(style))

    def decorate(canvas, doc):
        canvas.saveState()
        canvas.setFont("DejaVu", 9)
        canvas.drawString(15 * mm, landscape(A4)[1] - 10 * mm, f"Прайс-лист {COMPANY} — мебель и декор")
        canvas.drawRightString(landscape(A4)[0] - 15 * mm, 8 * mm, f"Страница {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(path, pagesize=landscape(A4), leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=15 * mm, title="Прайс-лист")
    doc.build([table], onFirstPage=decorate, onLaterPages=decorate)


def gen_chrome(rows, path, workdir):
    parts = [
        "<!doctype html><html lang=ru><head><meta charset=utf-8><title>Прайс-лист</title><style>",
        "body{font-family:'DejaVu Sans',sans-serif;font-size:10pt}",
        "table{border-collapse:collapse;width:100%}",
        "th,td{border:1px solid #888;padding:3px 5px}",
        "th{background:#ddd}",
        "td.cat{background:#eef;font-weight:bold}",
        "td.num{text-align:right;white-space:nowrap}",
        "col.name{width:42%}",
        "</style></head><body>",
        f"<h2>Прайс-лист {html.escape(COMPANY)}</h2><p>Цены в рублях с НДС</p>",
        "<table><colgroup><col><col class=name><col><col><col></colgroup>",
        "<thead><tr><th>Артикул</th><th>Наименование товара</th><th>Ед. изм.</th>"
        "<th>Цена</th><th>Остаток</th></tr></thead><tbody>",
    ]
    for category, items in groups(rows):
        parts.append(f"<tr><td class=cat colspan=5>{html.escape(category)}</td></tr>")
        for row in items:
            parts.append(
                f"<tr><td>{html.escape(row['sku'])}</td><td>{html.escape(row['name'])}</td>"
                f"<td>{html.escape(row['unit'])}</td>"
                f"<td class=num>{html.escape(ru_money(row['price'], chr(0xa0)))}</td>"
                f"<td class=num>{row['stock']}</td></tr>")
    parts.append("</tbody></table></body></html>")
    page = os.path.join(workdir, "price.html")
    with open(page, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    profile = tempfile.mkdtemp(prefix="chrome-profile-")
    try:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--no-pdf-header-footer",
             f"--print-to-pdf={path}", "file://" + page],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def gen_csv_1c(rows, path):
    lines = [f"Прайс-лист {COMPANY};;;;", "Дата формирования: 01.03.2025;;;;", ";;;;",
             "Артикул;Номенклатура;Ед. изм.;Цена;Количество"]
    for category, items in groups(rows):
        lines.append(f"{category};;;;")
        for row in items:
            price = ru_money(row["price"], "", "")
            if "," not in price:
                price += ",00"
            # Windows-1251 has no "×": 1C writes a Latin "x" instead (the scorer knows).
            name = row["name"].replace("×", "x")
            if ";" in name or '"' in name:
                name = '"' + name.replace('"', '""') + '"'
            lines.append(f"{row['sku']};{name};{row['unit']};{price};{row['stock']}")
    with open(path, "wb") as fh:
        fh.write(("\r\n".join(lines) + "\r\n").encode("cp1251"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    parser.add_argument("--only", default=",".join(GENERATORS))
    parser.add_argument("--seed", type=int, default=20250301)
    args = parser.parse_args()
    only = [g for g in args.only.split(",") if g]
    os.makedirs(args.out, exist_ok=True)
    rows = make_truth(args.rows, args.seed)
    write_truth(rows, os.path.join(args.out, "truth.csv"))
    work = tempfile.mkdtemp(prefix="catalog-corpus-")
    try:
        xlsx = os.path.join(args.out, "price.xlsx")
        if any(g in only for g in ["xlsx", "xls", "ods", "pdf_lo"]):
            gen_xlsx(rows, xlsx)
        for fmt, gen in [("xls", "xls"), ("ods", "ods"), ("pdf", "pdf_lo")]:
            if gen in only:
                soffice(xlsx, fmt, work)
                shutil.move(os.path.join(work, f"price.{fmt}"),
                            os.path.join(args.out, "price_libreoffice.pdf" if fmt == "pdf" else f"price.{fmt}"))
        if "xlsx" not in only and os.path.exists(xlsx):
            os.remove(xlsx)
        if "pdf_rl" in only:
            gen_reportlab(rows, os.path.join(args.out, "price_reportlab.pdf"))
        if "pdf_chrome" in only:
            gen_chrome(rows, os.path.join(args.out, "price_chromium.pdf"), work)
        if "csv_1c" in only:
            gen_csv_1c(rows, os.path.join(args.out, "price_1c.csv"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in sorted(os.listdir(args.out)):
        print(f"{name}\t{os.path.getsize(os.path.join(args.out, name))}")


if __name__ == "__main__":
    main()
