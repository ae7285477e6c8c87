// The agency's admin panel (/admin). Sign in by pasting ADMIN_TOKEN (kept in this
// tab's sessionStorage, sent as X-Admin-Token). Sections by #hash: tenants (list,
// create, a tenant's passport, key, provider token and channels), queues and dead
// letters, guardrails, recent send failures.

import { AdminApi, ApiError, errorText } from '../shared/api.js';
import {
  $, CHANNELS, banner, busy, card, empty, every, field, fmtDateTime, fmtPhone, h, mount, pill, secretBox, toast, toggle,
} from '../shared/dom.js';
import { channelsCard } from './channels.js';

const TOKEN_KEY = 'avio.admin.token';

let api = null;
let stopCurrent = null;

function signedIn(token) {
  api = new AdminApi(token);
  $('#signin').hidden = true;
  $('#panel').hidden = false;
  window.addEventListener('hashchange', route);
  route();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  window.location.hash = '';
  window.location.reload();
}

function showSignin(message) {
  $('#panel').hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = message || '';
  $('#signin-token').focus();
}

/** Any 401 while working means the token changed: back to sign-in. */
function handle(e, target) {
  if (e instanceof ApiError && e.code === 'invalid_admin_token') {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignin('Токен больше не действует. Войдите снова.');
    return;
  }
  if (target) mount(target, banner('err', errorText(e)));
  else toast(errorText(e), 'err');
}

function head(title, sub, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), ...actions, sub ? h('p', { class: 'sub' }, sub) : null);
}

function route() {
  if (stopCurrent) stopCurrent();
  stopCurrent = null;
  const [name] = (window.location.hash || '#tenants').slice(1).split('/');
  const section = { tenants, tenant: tenantPage, queues, guardrails, failures }[name] || tenants;
  const navKey = name === 'tenant' ? 'tenants' : section === tenants ? 'tenants' : name;
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.section === navKey);
  const main = $('#main');
  mount(main, h('div', { class: 'empty' }, h('span', { class: 'spinner' })));
  const stop = section(main);
  if (typeof stop === 'function') stopCurrent = stop;
  window.scrollTo(0, 0);
}

// ---------- Tenants ----------

function autoReplyPill(t) {
  const on = (t.behavior || {}).auto_reply_enabled;
  return on === false ? pill('off', 'Выключен') : pill('ok', 'Включён');
}

async function tenants(main) {
  let list;
  try {
    list = (await api.get('/admin/tenants')).tenants || [];
  } catch (e) {
    return handle(e, main);
  }
  const create = h('button', { class: 'btn btn-primary', type: 'button', id: 'new-tenant' }, '+ Новый клиент');
  const formCard = newTenantCard();
  formCard.hidden = list.length > 0;
  create.addEventListener('click', () => {
    formCard.hidden = !formCard.hidden;
    if (!formCard.hidden) formCard.querySelector('input[name=name]').focus();
  });
  const table = list.length
    ? h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table responsive', id: 'tenants-table' },
          h('thead', {}, h('tr', {}, ['ID', 'Клиент', 'Бренд', 'Город', 'Автоответ', ''].map((t) => h('th', {}, t)))),
          h(
            'tbody',
            {},
            list.map((t) => {
              const passport = t.passport || {};
              const row = h(
                'tr',
                { class: 'clickable', dataset: { tenant: t.id } },
                h('td', { 'data-label': 'ID', class: 'mono' }, String(t.id)),
                h('td', { 'data-label': 'Клиент' }, h('strong', {}, t.name || '—')),
                h('td', { 'data-label': 'Бренд' }, passport.brand || '—'),
                h('td', { 'data-label': 'Город' }, passport.city || '—'),
                h('td', { 'data-label': 'Автоответ' }, autoReplyPill(t)),
                h('td', { class: 'num' }, h('a', { class: 'btn btn-sm', href: `#tenant/${t.id}` }, 'Открыть')),
              );
              row.addEventListener('click', (event) => {
                if (event.target.tagName !== 'A') window.location.hash = `#tenant/${t.id}`;
              });
              return row;
            }),
          ),
        ),
      )
    : empty('Клиентов пока нет', 'Создайте первого клиента — затем отправьте ему ссылку на кабинет.');
  mount(
    main,
    head('Клиенты', 'Каждый клиент — отдельный бренд со своими мессенджерами, каталогом и персоной.', create),
    h('div', { class: 'stack' }, formCard, card(`Все клиенты · ${list.length}`, {}, table)),
  );
}

function input(name, value, attrs = {}) {
  return h('input', { type: 'text', name, value: value ?? '', ...attrs });
}

function newTenantCard() {
  const form = h(
    'form',
    { class: 'form', id: 'new-tenant-form' },
    h(
      'div',
      { class: 'grid-2' },
      field('Название клиента', input('name', '', { required: true, placeholder: 'ООО «Уютный дом»' })),
      field('ID (необязательно)', input('id', '', { type: 'number', min: 1, placeholder: 'назначится сам' })),
      field('Бренд', input('brand', '', { placeholder: 'Уютный дом' })),
      field('Имя ассистента', input('agent_name', '', { placeholder: 'Анна' })),
      field('Город', input('city', '', { placeholder: 'Казань' })),
      field('Ссылка WhatsApp', input('whatsapp_link', '', { placeholder: 'https://wa.me/7…' })),
    ),
    toggle('Автоответ бота включён', true, 'auto_reply_enabled'),
    h('div', { class: 'form-error', role: 'alert' }),
    h('div', { class: 'row' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Создать клиента')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value.trim();
    const body = {
      name: v('name'),
      passport: { brand: v('brand') || v('name'), agent_name: v('agent_name') || undefined, city: v('city') || undefined },
      settings: v('whatsapp_link') ? { whatsapp_link: v('whatsapp_link') } : {},
      behavior: { auto_reply: form.elements.auto_reply_enabled.checked, auto_reply_enabled: form.elements.auto_reply_enabled.checked },
    };
    if (v('id')) body.id = Number(v('id'));
    const error = form.querySelector('.form-error');
    busy(form.querySelector('button[type=submit]'), async () => {
      error.textContent = '';
      try {
        const created = await api.post('/admin/tenants', body);
        toast(`Клиент ${created.tenant.id} создан`);
        window.location.hash = `#tenant/${created.tenant.id}`;
      } catch (e) {
        if (e.code === 'invalid_admin_token') handle(e);
        else error.textContent = errorText(e);
      }
    });
  });
  return card('Новый клиент', { id: 'new-tenant-card' }, form);
}

async function tenantPage(main) {
  const id = Number((window.location.hash.split('/')[1]) || 0);
  let tenant;
  try {
    tenant = (await api.get(`/admin/tenants/${id}`)).tenant;
  } catch (e) {
    return handle(e, main);
  }
  const passport = tenant.passport || {};
  const back = h('a', { class: 'btn btn-ghost btn-sm', href: '#tenants' }, '← Все клиенты');
  const channels = channelsCard(api, id, handle);
  mount(
    main,
    h('div', { class: 'row' }, back),
    head(`${tenant.name || `Клиент ${id}`}`, `ID ${id}${passport.brand ? ` · бренд «${passport.brand}»` : ''}`),
    h(
      'div',
      { class: 'stack', id: 'tenant-page', dataset: { tenant: id } },
      h('div', { class: 'grid-2' }, keyCard(id), providerTokenCard(id)),
      channels.el,
      passportCard(tenant),
      failuresCard(id),
    ),
  );
  return channels.stop;
}

function passportCard(tenant) {
  const passport = tenant.passport || {};
  const settings = tenant.settings || {};
  const behavior = tenant.behavior || {};
  const json = h('textarea', { class: 'code', name: 'json', rows: 10, spellcheck: 'false' });
  json.value = JSON.stringify({ passport, settings, behavior }, null, 2);
  const form = h(
    'form',
    { class: 'form', id: 'tenant-form' },
    h(
      'div',
      { class: 'grid-2' },
      field('Название клиента', input('name', tenant.name, { required: true })),
      field('Бренд', input('brand', passport.brand)),
      field('Имя ассистента', input('agent_name', passport.agent_name)),
      field('Город', input('city', passport.city)),
      field('Ссылка WhatsApp', input('whatsapp_link', settings.whatsapp_link)),
      field('Ссылка на каталог', input('catalog_url', settings.catalog_url)),
    ),
    h(
      'div',
      { class: 'row' },
      toggle('Автоответ включён', behavior.auto_reply_enabled !== false, 'auto_reply_enabled'),
      toggle('Бот отвечает (auto_reply)', behavior.auto_reply !== false, 'auto_reply'),
    ),
    h(
      'details',
      {},
      h('summary', { class: 'small muted' }, 'Все поля (JSON): паспорт, настройки, поведение'),
      h('div', { class: 'stack' }, h('p', { class: 'small muted' }, 'Изменения в JSON применяются вместе с полями выше; пустое значение (null) удаляет поле.'), json),
    ),
    h('div', { class: 'form-error', role: 'alert' }),
    h('div', { class: 'row' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Сохранить')),
  );
  const original = json.value;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const error = form.querySelector('.form-error');
    error.textContent = '';
    let extra = {};
    if (json.value !== original) {
      try {
        extra = JSON.parse(json.value);
      } catch {
        error.textContent = 'В JSON ошибка: проверьте скобки и кавычки.';
        return;
      }
    }
    const v = (name) => {
      const text = form.elements[name].value.trim();
      return text === '' ? null : text;
    };
    const body = {
      name: v('name'),
      passport: { ...(extra.passport || {}), brand: v('brand'), agent_name: v('agent_name'), city: v('city') },
      settings: { ...(extra.settings || {}), whatsapp_link: v('whatsapp_link'), catalog_url: v('catalog_url') },
      behavior: {
        ...(extra.behavior || {}),
        auto_reply_enabled: form.elements.auto_reply_enabled.checked,
        auto_reply: form.elements.auto_reply.checked,
      },
    };
    busy(form.querySelector('button[type=submit]'), async () => {
      try {
        await api.patch(`/admin/tenants/${tenant.id}`, body);
        toast('Сохранено');
        route();
      } catch (e) {
        if (e.code === 'invalid_admin_token') handle(e);
        else error.textContent = errorText(e);
      }
    });
  });
  return card('Паспорт, настройки и поведение', { id: 'passport-card' }, form);
}

function keyCard(id) {
  const body = h('div', { class: 'stack' }, h('span', { class: 'spinner' }));
  const el = card('Ключ и ссылки клиента', { id: 'key-card' }, body);

  async function load() {
    try {
      const keys = (await api.get('/admin/keys/list', { tenant: id })).keys || [];
      if (!keys.length) {
        const create = h('button', { class: 'btn btn-primary', type: 'button', id: 'key-create' }, 'Создать ключ');
        create.addEventListener('click', () =>
          busy(create, async () => {
            try {
              await api.get('/admin/key/get', { tenant: id });
              toast('Ключ создан');
            } catch (e) {
              handle(e);
            }
            load();
          }),
        );
        mount(body, h('p', { class: 'muted' }, 'У клиента нет ключа: ссылки на кабинет не работают.'), h('div', { class: 'row' }, create));
        return;
      }
      // Returns the existing key (nothing is created here) with its links.
      const key = await api.get('/admin/key/get', { tenant: id });
      const del = h('button', { class: 'btn btn-danger btn-sm', type: 'button', id: 'key-delete' }, 'Удалить ключ');
      del.addEventListener('click', () => {
        if (!window.confirm('Удалить ключ? Все выданные клиенту ссылки перестанут работать.')) return;
        busy(del, async () => {
          try {
            await api.del('/admin/key', { tenant: id });
            toast('Ключ удалён');
          } catch (e) {
            handle(e);
          }
          load();
        });
      });
      const links = linksFor(key);
      mount(
        body,
        h('div', { class: 'field' }, h('span', {}, 'Кабинет клиента'), secretBox(links.cabinet, { label: 'Копировать ссылку' })),
        h('div', { class: 'field' }, h('span', {}, 'Подключение WhatsApp'), secretBox(links.wa, { label: 'Копировать' })),
        h('div', { class: 'field' }, h('span', {}, 'Подключение Telegram'), secretBox(links.tg, { label: 'Копировать' })),
        h('div', { class: 'field' }, h('span', {}, 'Ключ'), secretBox(key.key, { masked: true })),
        h('div', { class: 'row between' }, h('span', { class: 'small muted' }, `Создан ${fmtDateTime(key.created_at)}`), del),
      );
      body.dataset.cabinetLink = links.cabinet;
    } catch (e) {
      handle(e, body);
    }
  }
  load();
  return el;
}

/** Client links on this panel's own address (APP_BASE_URL may be another name for it). */
function linksFor(key) {
  const origin = window.location.origin;
  const query = `tenant=${encodeURIComponent(key.tenant)}&k=${key.key}`;
  return {
    cabinet: `${origin}/cabinet?${query}`,
    wa: `${origin}/connect/wa?${query}`,
    tg: `${origin}/connect/tg?${query}`,
  };
}

function providerTokenCard(id) {
  const body = h('div', { class: 'stack' }, h('span', { class: 'spinner' }));
  (async () => {
    try {
      const data = await api.get(`/admin/provider-token/${id}`);
      const origin = window.location.origin;
      mount(
        body,
        h('p', { class: 'small muted' }, 'Им внешние модули (WhatsApp, Telegram, Авито) подписывают вебхуки этого клиента.'),
        h('div', { class: 'field' }, h('span', {}, 'Токен провайдера'), secretBox(data.provider_token, { masked: true })),
        h('div', { class: 'field' }, h('span', {}, 'Адрес вебхука'), secretBox(`${origin}/webhook?token=${data.provider_token}`, { masked: false, label: 'Копировать' })),
        h('span', { class: 'small muted' }, `Создан ${fmtDateTime(data.created_at)}`),
      );
    } catch (e) {
      handle(e, body);
    }
  })();
  return card('Токен провайдера', { id: 'provider-card' }, body);
}

// ---------- Send failures ----------

function failuresTable(jobs, withTenant) {
  if (!jobs.length) return empty('Ошибок отправки нет', 'Здесь появятся сообщения, которые не удалось доставить.');
  const headers = ['Время', ...(withTenant ? ['Клиент'] : []), 'Канал', 'Получатель', 'Ошибка', 'Сообщение', 'Попыток'];
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table responsive', id: 'failures-table' },
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
      h(
        'tbody',
        {},
        jobs.map((j) =>
          h(
            'tr',
            {},
            h('td', { 'data-label': 'Время', class: 'nowrap' }, fmtDateTime(j.updated_at)),
            withTenant ? h('td', { 'data-label': 'Клиент' }, h('a', { href: `#tenant/${j.tenant}` }, String(j.tenant))) : null,
            h('td', { 'data-label': 'Канал' }, CHANNELS[j.channel] || j.channel),
            h('td', { 'data-label': 'Получатель', class: 'mono' }, j.channel === 'whatsapp' ? fmtPhone(j.recipient) : j.recipient),
            h('td', { 'data-label': 'Ошибка' }, pill(j.status === 'failed' ? 'err' : 'wait', j.error || j.status)),
            h('td', { 'data-label': 'Сообщение', class: 'small' }, j.text || '—'),
            h('td', { 'data-label': 'Попыток', class: 'num' }, String(j.attempts)),
          ),
        ),
      ),
    ),
  );
}

function failuresCard(id) {
  const body = h('div', {}, h('span', { class: 'spinner' }));
  (async () => {
    try {
      const jobs = (await api.get('/admin/outbox/recent', { status: 'failed,skipped', tenant: id, limit: 20 })).jobs || [];
      mount(body, failuresTable(jobs, false));
    } catch (e) {
      if (e.unavailable) mount(body, h('p', { class: 'muted' }, 'Список ошибок на сервере недоступен.'));
      else handle(e, body);
    }
  })();
  return card('Последние ошибки отправки', {}, body);
}

function failures(main) {
  const select = h(
    'select',
    { id: 'failures-filter', 'aria-label': 'Какие отправки показать' },
    h('option', { value: 'failed' }, 'Не доставлены'),
    h('option', { value: 'failed,skipped' }, 'Не доставлены и пропущены'),
    h('option', { value: 'all' }, 'Все отправки'),
  );
  const body = h('div', {}, h('span', { class: 'spinner' }));
  async function load() {
    try {
      const jobs = (await api.get('/admin/outbox/recent', { status: select.value, limit: 100 })).jobs || [];
      mount(body, failuresTable(jobs, true));
    } catch (e) {
      handle(e, body);
    }
  }
  select.addEventListener('change', load);
  mount(
    main,
    head('Ошибки отправки', 'Последние результаты send_result: что не ушло клиентам и почему.'),
    card('Отправки', { actions: h('div', { class: 'row' }, select) }, body),
  );
  return every(10000, load);
}

// ---------- Queues ----------

const QUEUE_NAMES = {
  'inbox:message_in': 'Входящие',
  'outbox:send': 'Исходящие',
  'catalog:jobs': 'Обработка каталогов',
  'bot:reply': 'Ответы бота',
};

function queues(main) {
  const depthBody = h('div', {}, h('span', { class: 'spinner' }));
  const deadBody = h('div', {}, h('span', { class: 'spinner' }));
  mount(
    main,
    head('Очереди', 'Сообщения в работе и те, что не удалось обработать после всех повторов.'),
    h('div', { class: 'stack' }, card('Глубина очередей', { id: 'queues-card' }, depthBody), card('Недоставленные (dead letters)', { id: 'dead-card' }, deadBody)),
  );
  async function load() {
    let data;
    try {
      data = await api.get('/admin/queues');
    } catch (e) {
      return handle(e, depthBody);
    }
    const depths = data.queues || [];
    mount(
      depthBody,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table responsive', id: 'queues-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Очередь'), h('th', { class: 'num' }, 'В очереди'), h('th', { class: 'num' }, 'Недоставлено'))),
          h(
            'tbody',
            {},
            depths.map((q) =>
              h(
                'tr',
                { dataset: { queue: q.queue } },
                h('td', { 'data-label': 'Очередь' }, h('div', {}, h('div', {}, QUEUE_NAMES[q.queue] || q.queue), h('div', { class: 'small muted mono' }, q.queue))),
                h('td', { 'data-label': 'В очереди', class: 'num' }, String(q.depth)),
                h('td', { 'data-label': 'Недоставлено', class: 'num' }, q.dead ? pill('err', String(q.dead)) : '0'),
              ),
            ),
          ),
        ),
      ),
    );
    const dead = data.dead || [];
    if (!dead.length) {
      mount(deadBody, empty('Всё обработано', 'Недоставленных сообщений нет.'));
      return;
    }
    mount(
      deadBody,
      h(
        'div',
        { class: 'list', id: 'dead-list' },
        dead.map((d) => {
          const retry = h('button', { class: 'btn btn-sm', type: 'button', dataset: { dead: d.id } }, 'Повторить');
          retry.addEventListener('click', () =>
            busy(retry, async () => {
              try {
                await api.post(`/admin/queues/dead/${d.id}/retry`);
                toast('Отправлено на повтор');
              } catch (e) {
                handle(e);
              }
              load();
            }),
          );
          const payload = d.payload || {};
          const message = payload.message || payload;
          const summary = [message.channel && (CHANNELS[message.channel] || message.channel), message.to || message.peer, message.text]
            .filter(Boolean)
            .join(' · ');
          return h(
            'div',
            { class: 'list-item', dataset: { deadItem: d.id } },
            h(
              'div',
              { class: 'grow' },
              h('div', {}, h('strong', {}, `#${d.id}`), ' ', h('span', { class: 'tag' }, QUEUE_NAMES[d.queue] || d.queue), ' ', h('span', { class: 'small muted' }, `попыток: ${d.attempts}`)),
              h('div', { class: 'small' }, summary || '—'),
              d.last_error ? h('div', { class: 'small form-error' }, d.last_error) : null,
              h('div', { class: 'small muted' }, fmtDateTime(d.enqueued_at_ms)),
            ),
            retry,
          );
        }),
      ),
    );
  }
  return every(5000, load);
}

// ---------- Guardrails ----------

const GUARDRAILS = {
  skip_no_text: ['Сообщения без текста пропущены', 'не больше 5 % за 15 минут'],
  webhook_non_2xx: ['Ошибки приёма вебхуков', 'меньше 1 % за 5 минут'],
  telegram_no_peer: ['Telegram: события без отправителя', '≈ 0 % за 15 минут'],
  whatsapp_invalid_from: ['WhatsApp: неверный номер отправителя', 'не больше 1 % за 15 минут'],
};

function guardrails(main) {
  const summary = h('div', {});
  const body = h('div', {}, h('span', { class: 'spinner' }));
  mount(main, head('Контроль качества', 'Пороги из спецификации, считаются по скользящим окнам.'), h('div', { class: 'stack' }, summary, card('Правила', { id: 'guardrails-card' }, body)));
  async function load() {
    let data;
    try {
      data = await api.get('/admin/guardrails');
    } catch (e) {
      return handle(e, body);
    }
    const rules = data.guardrails || [];
    mount(
      summary,
      data.healthy
        ? banner('ok', h('strong', {}, 'Всё в норме. '), 'Ни один порог не превышен.')
        : banner('err', h('strong', {}, 'Превышен порог. '), 'Проверьте правила, отмеченные красным.'),
    );
    mount(
      body,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table responsive', id: 'guardrails-table' },
          h('thead', {}, h('tr', {}, ['Правило', 'Канал', 'Сейчас', 'Порог', 'Событий', 'Статус'].map((t) => h('th', {}, t)))),
          h(
            'tbody',
            {},
            rules.map((g) => {
              const [title, limit] = GUARDRAILS[g.name] || [g.name, ''];
              return h(
                'tr',
                { dataset: { ok: String(g.ok) } },
                h('td', { 'data-label': 'Правило' }, h('div', {}, h('div', {}, title), h('div', { class: 'small muted mono' }, g.name))),
                h('td', { 'data-label': 'Канал' }, g.channel ? CHANNELS[g.channel] || g.channel : 'все'),
                h('td', { 'data-label': 'Сейчас', class: g.ok ? 'num' : 'num broken' }, `${(g.ratio * 100).toFixed(1)} %`),
                h('td', { 'data-label': 'Порог', class: 'small' }, limit || `${(g.max_ratio * 100).toFixed(1)} %`),
                h('td', { 'data-label': 'Событий', class: 'num' }, `${g.hits} из ${g.total}`),
                h('td', { 'data-label': 'Статус' }, g.ok ? pill('ok', 'Норма') : pill('err', 'Нарушено')),
              );
            }),
          ),
        ),
      ),
    );
  }
  return every(10000, load);
}

// ---------- Start ----------

async function start() {
  $('#signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('#signin-token').value.trim();
    const button = event.target.querySelector('button');
    await busy(button, async () => {
      try {
        await new AdminApi(token).get('/admin/tenants');
      } catch (e) {
        $('#signin-error').textContent = e.code === 'invalid_admin_token' ? 'Неверный токен.' : errorText(e);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      signedIn(token);
    });
  });
  $('#signout').addEventListener('click', signOut);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signedIn(token);
  else showSignin();
}

start();
