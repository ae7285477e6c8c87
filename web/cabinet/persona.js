// Persona: the editor, the placeholder list (click to insert) and a preview that
// follows typing (placeholders filled from the brand passport here, as the server
// does) and is replaced by the server's own rendering after each save.

import { errorText } from '../shared/api.js';
import { banner, busy, card, h, mount, pill, toast } from '../shared/dom.js';

const DESCRIPTIONS = {
  '{AGENT_NAME}': 'имя ассистента',
  '{BRAND}': 'бренд',
  '{CITY}': 'город',
  '{CHANNEL}': 'мессенджер диалога',
  '{WHATSAPP_LINK}': 'ссылка WhatsApp',
  '{CATALOG_URL}': 'ссылка на каталог',
  '{CURRENCY}': 'валюта',
};

/** The values the server substitutes (SPEC 7.1), from the tenant config. */
export function placeholderValues(cfg) {
  const passport = cfg.passport || {};
  const settings = cfg.settings || {};
  const text = (v) => (v === undefined || v === null ? '' : String(v));
  return {
    '{AGENT_NAME}': text(passport.agent_name) || 'Анна',
    '{BRAND}': text(passport.brand) || text(cfg.name),
    '{CITY}': text(passport.city),
    '{CHANNEL}': 'WhatsApp',
    '{WHATSAPP_LINK}': text(settings.whatsapp_link),
    '{CATALOG_URL}': text(settings.catalog_url),
    '{CURRENCY}': '₽',
  };
}

export function renderPersona(template, values) {
  let out = template;
  for (const [mark, value] of Object.entries(values)) out = out.split(mark).join(value);
  return out;
}

export function personaSection(ctx) {
  const { api } = ctx;
  const status = h('span', {}, pill('off', 'Загрузка…'));
  const editor = h('textarea', { class: 'persona', id: 'persona-text', spellcheck: 'true', 'aria-label': 'Текст персоны' });
  const preview = h('pre', { class: 'preview', id: 'persona-preview' });
  const previewNote = h('span', { class: 'small muted', id: 'persona-preview-note' });
  const chips = h('div', { class: 'chips', id: 'persona-placeholders' });
  const error = h('div', { class: 'form-error', role: 'alert' });
  const save = h('button', { class: 'btn btn-primary', type: 'button', id: 'persona-save' }, 'Сохранить');
  const reset = h('button', { class: 'btn btn-ghost', type: 'button', id: 'persona-reset' }, 'Вернуть стандартную');
  let saved = '';

  const values = () => placeholderValues(ctx.cfg());

  function live() {
    preview.textContent = renderPersona(editor.value, values());
    const dirty = editor.value !== saved;
    previewNote.textContent = dirty ? 'Предпросмотр по мере ввода — не забудьте сохранить' : 'Так бот видит персону сейчас';
    save.disabled = !dirty;
  }

  function showStatus(isDefault) {
    mount(status, isDefault ? pill('off', 'Стандартная') : pill('ok', 'Своя'));
  }

  function buildChips(list) {
    const v = values();
    mount(
      chips,
      list.map((mark) => {
        const chip = h(
          'button',
          { class: 'chip', type: 'button', title: `Вставить ${mark} (${DESCRIPTIONS[mark] || ''})` },
          h('code', {}, mark),
          h('span', { class: 'val' }, v[mark] || DESCRIPTIONS[mark] || ''),
        );
        chip.addEventListener('click', () => {
          const start = editor.selectionStart ?? editor.value.length;
          const end = editor.selectionEnd ?? start;
          editor.setRangeText(mark, start, end, 'end');
          editor.focus();
          live();
        });
        return chip;
      }),
    );
  }

  async function load() {
    try {
      const data = await api.get('/pub/persona');
      saved = data.text || '';
      editor.value = saved;
      showStatus(data.is_default);
      buildChips(data.placeholders || Object.keys(DESCRIPTIONS));
      live();
      if (data.preview !== undefined) preview.textContent = data.preview;
    } catch (e) {
      mount(error, errorText(e));
    }
  }

  editor.addEventListener('input', live);
  save.addEventListener('click', () =>
    busy(save, async () => {
      error.textContent = '';
      try {
        const data = await api.post('/pub/persona', { text: editor.value });
        saved = editor.value;
        showStatus(data.is_default);
        live();
        if (data.preview !== undefined) preview.textContent = data.preview;
        toast('Персона сохранена — бот использует её со следующего сообщения');
      } catch (e) {
        error.textContent = errorText(e);
      }
    }).then(live),
  );
  reset.addEventListener('click', () => {
    if (!window.confirm('Вернуть стандартную персону? Ваш текст будет заменён.')) return;
    busy(reset, async () => {
      try {
        await api.post('/pub/persona', { reset: true });
        await load();
        toast('Стандартная персона восстановлена');
      } catch (e) {
        error.textContent = errorText(e);
      }
    });
  });

  load();

  const el = h(
    'div',
    { class: 'stack' },
    card(
      'Подстановки',
      {},
      h('p', { class: 'small muted' }, 'Нажмите, чтобы вставить в текст. Значения берутся из раздела «Бренд и настройки».'),
      chips,
    ),
    h(
      'div',
      { class: 'grid-2' },
      card('Текст персоны', { actions: status }, h('div', { class: 'stack' }, editor, error, h('div', { class: 'row' }, save, reset))),
      card('Предпросмотр', { actions: previewNote }, preview),
    ),
    banner('', 'Персона — это инструкция для бота: кто он, как обращается к клиенту, что можно и чего нельзя. Цены и товары бот берёт только из каталога.'),
  );
  return { el };
}
