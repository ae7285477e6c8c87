// Small DOM helpers shared by every page. Text always goes in as text nodes, never
// as HTML, so nothing from the server or a lead can inject markup.

/** Builds an element: h('div', {class: 'x', onclick: fn}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = Boolean(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status pill: kind is ok (green), wait (amber), err (red) or off (grey). */
export function pill(kind, text) {
  return h('span', { class: `pill ${kind || ''}`, dataset: { state: kind || 'off' } }, text);
}

export function banner(kind, ...children) {
  return h('div', { class: `banner ${kind || ''}` }, ...children);
}

export function empty(title, text) {
  return h('div', { class: 'empty' }, h('strong', {}, title), text ? h('span', {}, text) : null);
}

export function card(title, { icon, iconClass, actions, id, cls } = {}, ...body) {
  return h(
    'section',
    { class: `card ${cls || ''}`, id },
    h(
      'div',
      { class: 'card-head' },
      icon ? h('span', { class: `icon ${iconClass || ''}` }, icon) : null,
      h('h2', {}, title),
      actions || null,
    ),
    ...body,
  );
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
}

export function toggle(label, checked, name) {
  return h(
    'label',
    { class: 'switch' },
    h('input', { type: 'checkbox', name, checked }),
    h('span', { class: 'track' }),
    h('span', {}, label),
  );
}

/** Fits a textarea's height to its text (up to its CSS max-height). */
export function grow(textarea) {
  textarea.style.height = 'auto';
  if (textarea.value) textarea.style.height = `${textarea.scrollHeight + 2}px`;
  else textarea.style.removeProperty('height');
}

let toastBox = null;

/** A short message in the corner; kind 'err' for failures. */
export function toast(text, kind) {
  if (!toastBox) {
    toastBox = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(toastBox);
  }
  const item = h('div', { class: `toast ${kind || ''}` }, text);
  toastBox.appendChild(item);
  setTimeout(() => item.remove(), kind === 'err' ? 6000 : 3000);
}

/** Runs an async action with the button disabled and a spinner. */
export async function busy(button, action) {
  if (button) {
    button.disabled = true;
    button.classList.add('busy');
  }
  try {
    return await action();
  } finally {
    if (button) {
      button.disabled = false;
      button.classList.remove('busy');
    }
  }
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h('textarea', { class: 'offscreen' });
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  toast('Скопировано');
}

/** A secret or a link with "copy" (and optional "show") buttons. */
export function secretBox(value, { masked = false, label = 'Копировать' } = {}) {
  const shown = h('code', {}, masked ? mask(value) : value);
  const box = h('div', { class: 'secret' }, shown);
  if (masked) {
    const reveal = h('button', { class: 'btn btn-sm btn-ghost', type: 'button' }, 'Показать');
    reveal.addEventListener('click', () => {
      const hidden = reveal.textContent === 'Показать';
      shown.textContent = hidden ? value : mask(value);
      reveal.textContent = hidden ? 'Скрыть' : 'Показать';
    });
    box.appendChild(reveal);
  }
  box.appendChild(
    h('button', { class: 'btn btn-sm', type: 'button', onclick: () => copyText(value) }, label),
  );
  return box;
}

function mask(value) {
  const text = String(value || '');
  return text.length <= 8 ? '••••••••' : `${text.slice(0, 4)}••••••••${text.slice(-4)}`;
}

/** Epoch seconds, milliseconds or an RFC 3339 string → Date (or null). */
export function toDate(ts) {
  if (ts === null || ts === undefined || ts === '') return null;
  if (typeof ts === 'number') return new Date(ts > 1e12 ? ts : ts * 1000);
  const n = Number(ts);
  if (!Number.isNaN(n) && String(ts).trim() !== '') return new Date(n > 1e12 ? n : n * 1000);
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtTime(ts) {
  const d = toDate(ts);
  if (!d) return '';
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString('ru-RU', { hour: '2-digit', minute: '2-digit' });
  if (sameDay) return time;
  return `${d.toLocaleDateString('ru-RU', { day: 'numeric', month: 'short' })}, ${time}`;
}

export function fmtDateTime(ts) {
  const d = toDate(ts);
  return d ? d.toLocaleString('ru-RU', { dateStyle: 'medium', timeStyle: 'short' }) : '—';
}

/** 79990001122 → +7 999 000-11-22 (other numbers: + and the digits). */
export function fmtPhone(value) {
  const digits = String(value || '').replace(/\D/g, '');
  if (digits.length === 11 && digits.startsWith('7')) {
    return `+7 ${digits.slice(1, 4)} ${digits.slice(4, 7)}-${digits.slice(7, 9)}-${digits.slice(9)}`;
  }
  return digits ? `+${digits}` : String(value || '');
}

export function fmtSize(bytes) {
  if (!Number.isFinite(bytes)) return '';
  if (bytes < 1024) return `${bytes} Б`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} КБ`;
  return `${(bytes / 1024 / 1024).toFixed(1)} МБ`;
}

/** Russian plural: plural(5, 'строка', 'строки', 'строк'). */
export function plural(n, one, few, many) {
  const m10 = n % 10;
  const m100 = n % 100;
  if (m10 === 1 && m100 !== 11) return one;
  if (m10 >= 2 && m10 <= 4 && (m100 < 12 || m100 > 14)) return few;
  return many;
}

/** Calls fn now and then every `ms` while the page is visible; returns a stopper. */
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (e) {
        console.warn(e);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export const CHANNELS = {
  whatsapp: 'WhatsApp',
  telegram: 'Telegram',
  avito: 'Авито',
  simulator: 'Тест',
};
