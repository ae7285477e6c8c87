// Catalog: upload with a real progress bar (XMLHttpRequest upload events), the
// conversion job's result (rows, warnings) and a preview of the normalized CSV.

import { ApiError, errorText } from '../shared/api.js';
import { banner, card, empty, fmtDateTime, fmtSize, h, mount, pill, plural } from '../shared/dom.js';

const ACCEPT = '.pdf,.csv,.xlsx,.xls,.ods';
const PREVIEW_ROWS = 20;
const COLUMN_NAMES = {
  sku: 'Артикул',
  name: 'Название',
  category: 'Категория',
  price: 'Цена',
  currency: 'Валюта',
  unit: 'Ед.',
  stock: 'Остаток',
  url: 'Ссылка',
  description: 'Описание',
};

const CURRENCY_SIGNS = { RUB: '₽', USD: '$', EUR: '€', KZT: '₸', BYN: 'Br', UAH: '₴', CNY: '¥' };

/** POST the file with progress; resolves to the JSON answer. */
function upload(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.responseType = 'text';
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText || '{}');
      } catch {
        body = {};
      }
      if (xhr.status >= 200 && xhr.status < 300 && body.ok !== false) resolve(body);
      else reject(new ApiError(xhr.status, body));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, { error: 'network' })));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/** 45990.5 → «45 990,5» (the CSV keeps a dot; people read a comma). */
function fmtPrice(cell) {
  const n = Number(cell);
  if (cell === '' || cell === null || cell === undefined || Number.isNaN(n)) return cell ?? '';
  return n.toLocaleString('ru-RU', { maximumFractionDigits: 2 });
}

/** The converter's notes, in Russian where we know them. */
function warningText(text) {
  const encoding = /^read as (.+)$/.exec(text);
  if (encoding) return `Файл прочитан в кодировке ${encoding[1]}.`;
  return text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function catalogSection(ctx) {
  const { api } = ctx;
  let alive = true;

  const input = h('input', { type: 'file', id: 'catalog-file', name: 'file', accept: ACCEPT });
  const drop = h(
    'label',
    { class: 'dropzone', for: 'catalog-file' },
    input,
    h('span', { class: 'big' }, 'Выберите файл или перетащите его сюда'),
    h('span', { class: 'muted small' }, 'PDF, Excel (XLSX, XLS), ODS или CSV'),
  );
  const bar = h('div', { class: 'bar' });
  const progress = h('div', { class: 'progress', id: 'upload-progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, bar);
  const progressText = h('span', { class: 'small muted', id: 'upload-progress-text' });
  const progressBlock = h(
    'div',
    { class: 'stack', hidden: true },
    h('div', { class: 'row between' }, h('strong', { class: 'grow', id: 'upload-name' }), progressText),
    progress,
  );
  const result = h('div', { id: 'catalog-result' });
  const preview = h('div', { id: 'catalog-preview' }, h('div', { class: 'empty' }, h('span', { class: 'spinner' })));
  const current = h('div', { class: 'small muted', id: 'catalog-current' });

  function setProgress(fraction, text, state) {
    const percent = Math.round(fraction * 100);
    bar.style.width = `${percent}%`;
    progress.setAttribute('aria-valuenow', String(percent));
    progress.classList.toggle('done', state === 'done');
    progress.classList.toggle('failed', state === 'failed');
    progressText.textContent = text;
  }

  function showCurrent(cfg) {
    const uploaded = ((cfg.integrations || {}).uploaded_catalog) || null;
    if (uploaded && uploaded.original) {
      mount(current, `Сейчас: ${uploaded.original}`, uploaded.uploaded_at ? ` · загружен ${fmtDateTime(uploaded.uploaded_at)}` : '');
    } else {
      mount(current);
    }
  }

  async function loadPreview() {
    try {
      const data = await api.get('/pub/catalog/preview', { limit: PREVIEW_ROWS });
      if (!alive) return;
      renderPreview(data);
    } catch (e) {
      if (!alive) return;
      if (e.code === 'catalog_not_found') {
        mount(preview, empty('Каталог ещё не загружен', 'Загрузите прайс-лист — бот будет называть товары и цены только из него.'));
      } else {
        mount(preview, e.unavailable ? h('p', { class: 'muted' }, 'Предпросмотр каталога на сервере пока недоступен.') : banner('err', errorText(e)));
      }
    }
  }

  function renderPreview(data) {
    const header = data.header || [];
    const rows = data.rows || [];
    const total = Number(data.total_rows ?? rows.length);
    mount(
      preview,
      h(
        'p',
        { class: 'muted small' },
        `Всего ${total} ${plural(total, 'строка', 'строки', 'строк')}`,
        total > rows.length ? `, показаны первые ${rows.length}` : '',
        '.',
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table compact catalog', id: 'catalog-table' },
          h('thead', {}, h('tr', {}, header.map((col) => h('th', { class: col === 'price' || col === 'stock' ? 'num' : '' }, COLUMN_NAMES[col] || col)))),
          h(
            'tbody',
            {},
            rows.map((row) => {
              const cells = Array.isArray(row) ? row : header.map((col) => row[col]);
              const currency = cells[header.indexOf('currency')];
              return h(
                'tr',
                {},
                cells.map((cell, i) => {
                  const col = header[i] || '';
                  const attrs = { class: col === 'price' || col === 'stock' ? 'num' : '', title: cell || '', dataset: { col } };
                  // On a phone each row is a card: the name, the price with its currency, the rest small.
                  if (col === 'price' && cell !== '' && cell != null) attrs.dataset.currency = CURRENCY_SIGNS[currency] || currency || '';
                  if (col === 'stock' || col === 'category' || col === 'sku') attrs.dataset.label = COLUMN_NAMES[col];
                  const shown = col === 'price' ? fmtPrice(cell) : cell ?? '';
                  return h('td', attrs, shown === '' ? null : shown);
                }),
              );
            }),
          ),
        ),
      ),
    );
  }

  function renderJob(job) {
    const rows = Number(job.rows || 0);
    const warnings = job.warnings || [];
    if (job.state === 'done') {
      mount(
        result,
        banner('ok', h('strong', {}, `Готово: ${rows} ${plural(rows, 'товар', 'товара', 'товаров')}`), ` из файла «${job.original || 'файл'}».`),
        warnings.length
          ? h('div', { class: 'stack' }, h('div', { class: 'section-title' }, 'Предупреждения'), h('ul', { class: 'warnings' }, warnings.map((w) => h('li', {}, warningText(w)))))
          : null,
      );
    } else if (job.state === 'failed') {
      mount(result, banner('err', h('strong', {}, 'Файл не удалось обработать. '), job.error || ''));
    } else {
      mount(result, h('div', { class: 'row muted' }, h('span', { class: 'spinner' }), job.state === 'running' ? 'Обрабатываем файл…' : 'Файл в очереди на обработку…'));
    }
  }

  async function pollJob(jobId) {
    const deadline = Date.now() + 5 * 60 * 1000;
    while (alive && Date.now() < deadline) {
      let job;
      try {
        job = await api.get('/pub/catalog/job', { job_id: jobId });
      } catch (e) {
        mount(result, banner('err', errorText(e)));
        return;
      }
      renderJob(job);
      if (job.state === 'done' || job.state === 'failed') {
        setProgress(1, job.state === 'done' ? 'Готово' : 'Ошибка', job.state);
        if (job.state === 'done') {
          await loadPreview();
          showCurrent(await ctx.reloadCfg());
        }
        return;
      }
      await sleep(800);
    }
  }

  async function send(file) {
    if (!file) return;
    progressBlock.hidden = false;
    mount(result);
    mount(progressBlock.querySelector('#upload-name'), `${file.name} · ${fmtSize(file.size)}`);
    setProgress(0, 'Загрузка… 0%');
    input.disabled = true;
    try {
      const answer = await upload(api.url('/pub/catalog/upload'), file, (f) => setProgress(f * 0.98, `Загрузка… ${Math.round(f * 100)}%`));
      setProgress(1, 'Загружено, обрабатываем…');
      await pollJob(answer.job_id);
    } catch (e) {
      setProgress(1, 'Ошибка', 'failed');
      mount(result, banner('err', errorText(e)));
    } finally {
      input.disabled = false;
      input.value = '';
    }
  }

  input.addEventListener('change', () => send(input.files[0]));
  for (const name of ['dragenter', 'dragover']) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const name of ['dragleave', 'drop']) drop.addEventListener(name, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    send(event.dataTransfer.files[0]);
  });

  showCurrent(ctx.cfg());
  loadPreview();

  const el = h(
    'div',
    { class: 'stack' },
    card('Загрузить прайс-лист', { actions: pill('off', 'PDF · XLSX · CSV') }, h('div', { class: 'stack' }, drop, current, progressBlock, result)),
    card('Предпросмотр каталога', {}, preview),
  );
  return { el, stop: () => { alive = false; } };
}
