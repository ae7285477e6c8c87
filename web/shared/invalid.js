// The "link is invalid" view: shown for a wrong or deleted key; it names no tenant.

import { h, mount } from './dom.js';

export function invalidLink() {
  document.title = 'Ссылка недействительна — Avio';
  mount(
    document.body,
    h(
      'main',
      { class: 'center-page' },
      h(
        'section',
        { class: 'card text-center', id: 'invalid-link' },
        h('div', { class: 'big-icon err' }, '!'),
        h('h1', {}, 'Ссылка недействительна'),
        h('p', { class: 'lead' }, 'Возможно, ссылку скопировали не полностью или агентство выдало новую.'),
        h('p', { class: 'muted small' }, 'Попросите у агентства актуальную ссылку и откройте её ещё раз.'),
        h('p', { class: 'footer-note' }, 'Avio'),
      ),
    ),
  );
}
