// Brand passport and settings: what the bot substitutes into its replies, and the
// auto-reply switch (POST /pub/settings/save).

import { errorText } from '../shared/api.js';
import { busy, card, field, h, toast, toggle } from '../shared/dom.js';

export function brandSection(ctx) {
  const cfg = ctx.cfg();
  const passport = cfg.passport || {};
  const settings = cfg.settings || {};
  const behavior = cfg.behavior || {};
  const input = (name, value, attrs = {}) => h('input', { type: 'text', name, value: value ?? '', ...attrs });

  const form = h(
    'form',
    { class: 'form', id: 'brand-form' },
    h(
      'div',
      { class: 'grid-2' },
      field('Бренд', input('brand', passport.brand, { placeholder: 'Уютный дом' }), 'Как называется магазин или компания.'),
      field('Имя ассистента', input('agent_name', passport.agent_name, { placeholder: 'Анна' }), 'Так бот представляется клиентам.'),
      field('Город', input('city', passport.city, { placeholder: 'Казань' })),
      field('Ссылка WhatsApp', input('whatsapp_link', settings.whatsapp_link, { type: 'url', placeholder: 'https://wa.me/79990001122', inputmode: 'url' })),
    ),
    field('Ссылка на каталог', input('catalog_url', settings.catalog_url, { type: 'url', placeholder: 'https://example.ru/catalog', inputmode: 'url' }), 'Бот может дать её клиенту, чтобы посмотреть весь ассортимент.'),
    h('hr', { class: 'divider' }),
    toggle('Бот отвечает клиентам автоматически', behavior.auto_reply_enabled !== false, 'auto_reply_enabled'),
    h('p', { class: 'small muted' }, 'Выключите, чтобы на время отвечать только самим: сообщения продолжат сохраняться в диалогах.'),
    h('div', { class: 'form-error', role: 'alert' }),
    h('div', { class: 'row' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Сохранить')),
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = (name) => {
      const text = form.elements[name].value.trim();
      return text === '' ? null : text;
    };
    const error = form.querySelector('.form-error');
    busy(form.querySelector('button[type=submit]'), async () => {
      error.textContent = '';
      try {
        await ctx.api.post('/pub/settings/save', {
          passport: { brand: value('brand'), agent_name: value('agent_name'), city: value('city') },
          settings: { whatsapp_link: value('whatsapp_link'), catalog_url: value('catalog_url') },
          behavior: { auto_reply_enabled: form.elements.auto_reply_enabled.checked },
        });
        await ctx.reloadCfg();
        toast('Настройки сохранены');
      } catch (e) {
        error.textContent = errorText(e);
      }
    });
  });

  return { el: card('Паспорт бренда', {}, form) };
}
