// The client cabinet (/cabinet?tenant=&k=): one page, sections by #hash. The link's
// key is checked first (GET /pub/settings/get); a wrong key shows only the
// "link is invalid" card.

import { ApiError, PubApi, errorText, linkParams } from '../shared/api.js';
import { AvitoPanel, TelegramPanel, WhatsAppPanel } from '../shared/channels.js';
import { $, card, h, mount } from '../shared/dom.js';
import { invalidLink } from '../shared/invalid.js';
import { brandSection } from './brand.js';
import { catalogSection } from './catalog.js';
import { dialogsSection } from './dialogs.js';
import { personaSection } from './persona.js';
import { tryBotSection } from './trybot.js';

const SECTIONS = {
  connect: { title: 'Подключения', sub: 'Подключите мессенджеры, в которых бот будет отвечать вашим клиентам.', build: connectSection },
  catalog: { title: 'Каталог', sub: 'Прайс-лист, по которому бот называет товары и цены.', build: catalogSection },
  persona: { title: 'Персона', sub: 'Как бот представляется и ведёт разговор.', build: personaSection },
  brand: { title: 'Бренд и настройки', sub: 'Данные, которые бот подставляет в ответы.', build: brandSection },
  bot: { title: 'Проверить бота', sub: 'Напишите боту как покупатель: сообщения никуда не отправляются.', build: tryBotSection },
  dialogs: { title: 'Диалоги', sub: 'Переписка с клиентами. Возьмите диалог, чтобы ответить самому.', build: dialogsSection },
};

function connectSection(ctx) {
  const panels = [new WhatsAppPanel(ctx.api), new TelegramPanel(ctx.api), new AvitoPanel(ctx.api)];
  const [wa, tg, avito] = panels;
  const el = h(
    'div',
    { class: 'stack' },
    card('WhatsApp', { icon: 'W', iconClass: 'wa', actions: wa.pill, id: 'wa-card' }, wa.body),
    card('Telegram', { icon: 'T', iconClass: 'tg', actions: tg.pill, id: 'tg-card' }, tg.body),
    card('Авито', { icon: 'A', iconClass: 'av', actions: avito.pill, id: 'avito-card' }, avito.body),
  );
  panels.forEach((p) => p.start());
  return { el, stop: () => panels.forEach((p) => p.stop()) };
}

class Cabinet {
  constructor(api, cfg) {
    this.api = api;
    this.cfg = cfg;
    this.current = null;
  }

  /** Shared with the sections: the API, the tenant config and a way to refresh it. */
  get ctx() {
    return {
      api: this.api,
      cfg: () => this.cfg,
      reloadCfg: async () => {
        this.cfg = (await this.api.get('/pub/settings/get')).cfg || {};
        this.showBrand();
        return this.cfg;
      },
      invalid: invalidLink,
    };
  }

  showBrand() {
    const passport = this.cfg.passport || {};
    const brand = passport.brand || this.cfg.name || 'Кабинет клиента';
    $('#brand-name').textContent = brand;
    document.title = `${brand} — кабинет Avio`;
  }

  route() {
    const name = (window.location.hash || '#connect').slice(1).split('/')[0];
    const key = SECTIONS[name] ? name : 'connect';
    if (this.current && this.current.stop) this.current.stop();
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('active', link.dataset.section === key);
      if (link.dataset.section === key) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const section = SECTIONS[key];
    const built = section.build(this.ctx);
    this.current = built;
    mount(
      $('#main'),
      h(
        'div',
        { class: 'page-head', id: `section-${key}` },
        h('h1', {}, section.title),
        h('p', { class: 'sub' }, section.sub),
      ),
      built.el,
    );
    window.scrollTo(0, 0);
  }
}

async function main() {
  const { tenant, key } = linkParams();
  const api = new PubApi(tenant, key);
  // Every section link keeps ?tenant=&k= (the hash changes only).
  let cfg;
  try {
    cfg = (await api.get('/pub/settings/get')).cfg || {};
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'invalid_key' || e.code === 'invalid_payload')) {
      invalidLink();
    } else {
      mount($('#main'), h('div', { class: 'banner err' }, errorText(e)));
    }
    return;
  }
  const cabinet = new Cabinet(api, cfg);
  cabinet.showBrand();
  window.addEventListener('hashchange', () => cabinet.route());
  cabinet.route();
}

main();
