// A tenant's channels in the admin panel: WhatsApp (start, stop, restart, logout),
// Telegram (state, logout), Avito (state, webhook, subscriptions, disconnect). A
// channel this server does not have (route 404) or cannot reach shows as such.

import { ApiError, PubApi, errorText } from '../shared/api.js';
import { busy, card, every, fmtDateTime, fmtPhone, h, mount, pill, toast } from '../shared/dom.js';

const WA_STATES = {
  ready: ['ok', 'Подключено'],
  qr: ['wait', 'Ждёт QR'],
  starting: ['wait', 'Запускается'],
  stopped: ['off', 'Остановлено'],
  logged_out: ['off', 'Не подключено'],
  failed: ['err', 'Ошибка'],
};

const TG_STATES = {
  authorized: ['ok', 'Подключено'],
  need_qr: ['off', 'Не подключено'],
  need_2fa: ['wait', 'Ждёт пароль 2FA'],
  failed: ['err', 'Ошибка'],
};

/** Telegram's reasons for `failed` (or the last problem reaching it), for the agency. */
const TG_REASONS = {
  qr_expired: 'QR-код истёк, пока его не отсканировали: клиенту нужно открыть ссылку /connect/tg снова.',
  session_revoked: 'сессию завершили с телефона (Настройки → Устройства): клиенту нужно подключиться заново.',
  auth_key_unregistered: 'Telegram больше не признаёт эту сессию: клиенту нужно подключиться заново.',
  auth_key_duplicated: 'сессия открыта в двух местах одновременно, Telegram её закрыл: подключите заново.',
  session_expired: 'сессия истекла: клиенту нужно подключиться заново.',
  user_deactivated: 'аккаунт Telegram удалён.',
  user_deactivated_ban: 'аккаунт Telegram заблокирован Telegram.',
};

function tgReason(reason, failed) {
  const known = TG_REASONS[reason];
  const text = known || (failed ? 'вход не удался' : 'последняя ошибка связи с Telegram');
  return `${failed ? 'Ошибка' : 'Замечание'}: ${text} (${reason})`;
}

/** PEER_FLOOD: Telegram limited the account for writing to people who did not write first. */
function peerFlood(at) {
  return h(
    'div',
    { class: 'banner err stack tight', id: 'admin-tg-peer-flood' },
    h('strong', {}, `Telegram ограничил аккаунт (PEER_FLOOD) · ${fmtDateTime(at)}`),
    h('div', {}, 'Сообщения людям, которые не писали первыми, не доставляются.'),
    h(
      'div',
      {},
      h('strong', {}, 'Что делать: '),
      'клиенту написать @SpamBot в Telegram и следовать его ответу; пока ограничение действует, не отправлять первые ',
      'сообщения новым контактам (/send). Ответы тем, кто написал сам, обычно доходят.',
    ),
  );
}

function row(icon, iconClass, title, status, detail, actions) {
  return h(
    'div',
    { class: 'list-item channel-row' },
    h('span', { class: `card-head-icon icon ${iconClass}` }, icon),
    h('div', { class: 'grow' }, h('div', { class: 'row' }, h('strong', {}, title), status), detail),
    actions ? h('div', { class: 'row' }, actions) : null,
  );
}

function unavailable(e) {
  if (e instanceof ApiError && e.status === 404 && !e.body.error) return 'Не включено в этой сборке сервера.';
  return errorText(e);
}

export function channelsCard(api, tenant, handle) {
  const waSlot = h('div', { id: 'admin-wa' });
  const tgSlot = h('div', { id: 'admin-tg' });
  const avitoSlot = h('div', { id: 'admin-avito' });
  const el = card('Каналы', { id: 'channels-card' }, h('div', { class: 'list' }, waSlot, tgSlot, avitoSlot));
  let pub = null;

  /** The tenant's key lets the panel call the cabinet's routes (logout, refresh). */
  async function pubApi() {
    if (pub) return pub;
    const keys = (await api.get('/admin/keys/list', { tenant })).keys || [];
    if (!keys.length) throw new Error('no_key');
    pub = new PubApi(tenant, keys[0].key);
    return pub;
  }

  function button(label, cls, action, confirmText) {
    const b = h('button', { class: `btn btn-sm ${cls || ''}`, type: 'button' }, label);
    b.addEventListener('click', () => {
      if (confirmText && !window.confirm(confirmText)) return;
      busy(b, async () => {
        try {
          await action();
        } catch (e) {
          if (e.message === 'no_key') toast('Сначала создайте клиенту ключ', 'err');
          else handle(e);
        }
        await load();
      });
    });
    return b;
  }

  async function whatsapp() {
    let session;
    try {
      const data = await api.get('/admin/wa/status', { tenant });
      session = (data.sessions || [])[0] || { state: 'stopped' };
    } catch (e) {
      if (e.code === 'invalid_admin_token') return handle(e);
      mount(waSlot, row('W', 'wa', 'WhatsApp', pill('off', 'Недоступно'), h('div', { class: 'small muted' }, unavailable(e))));
      return;
    }
    const [kind, label] = WA_STATES[session.state] || ['off', session.state];
    const detail = [
      session.me ? `Номер ${fmtPhone(session.me)}` : null,
      session.pushname ? `«${session.pushname}»` : null,
      session.running ? 'браузер запущен' : 'браузер не запущен',
      session.restarts ? `перезапусков: ${session.restarts}` : null,
    ].filter(Boolean);
    mount(
      waSlot,
      row(
        'W',
        'wa',
        'WhatsApp',
        pill(kind, label),
        h('div', {}, h('div', { class: 'small muted' }, detail.join(' · ')), session.last_error ? h('div', { class: 'small form-error' }, session.last_error) : null),
        [
          button('Запустить', '', () => api.post('/admin/wa/up', {}, { tenant })),
          button('Остановить', '', () => api.post('/admin/wa/down', {}, { tenant })),
          button('Перезапустить', '', () => api.post('/admin/wa/restart', {}, { tenant })),
          button('Выйти', 'btn-danger', async () => (await pubApi()).post('/pub/wa/logout'), 'Выйти из WhatsApp клиента? Понадобится новый QR-код.'),
        ],
      ),
    );
  }

  async function telegram() {
    let status;
    try {
      status = await api.get('/admin/tg/status', { tenant });
    } catch (e) {
      if (e.code === 'invalid_admin_token') return handle(e);
      const notConfigured = e.code === 'tg_unavailable' && e.body.reason === 'not_configured';
      const text = notConfigured
        ? 'Telegram не настроен на сервере: задайте TELEGRAM_API_ID и TELEGRAM_API_HASH (с my.telegram.org) в /etc/avio/avio.env и выполните sudo systemctl restart avio. Клиенту пока показывается «Подключение Telegram пока не включено».'
        : e.code === 'tg_unavailable'
          ? `Telegram сейчас недоступен${e.body.reason ? ` (${e.body.reason})` : ''}. Попробуйте через минуту.`
          : unavailable(e);
      const status = notConfigured ? pill('wait', 'Не настроено') : pill(e.code === 'tg_unavailable' ? 'err' : 'off', 'Недоступно');
      mount(tgSlot, row('T', 'tg', 'Telegram', status, h('div', { class: 'small muted', id: 'admin-tg-note' }, text)));
      return;
    }
    const [kind, label] = TG_STATES[status.state] || ['off', status.state];
    const me = status.me || {};
    const who = me.username ? `@${me.username}` : me.first_name || '';
    const failed = status.state === 'failed';
    mount(
      tgSlot,
      row(
        'T',
        'tg',
        'Telegram',
        h('span', { class: 'row' }, pill(kind, label), status.peer_flood_at ? pill('err', 'PEER_FLOOD') : null),
        h(
          'div',
          { class: 'stack tight' },
          h('div', { class: 'small muted' }, who ? `Аккаунт ${who}` : 'Клиент подключает Telegram по своей ссылке /connect/tg.'),
          status.reason ? h('div', { class: `small ${failed ? 'form-error' : 'muted'}`, id: 'admin-tg-reason' }, tgReason(status.reason, failed)) : null,
          status.peer_flood_at ? peerFlood(status.peer_flood_at) : null,
        ),
        status.authorized ? [button('Выйти', 'btn-danger', () => api.post('/admin/tg/logout', {}, { tenant }), 'Выйти из Telegram клиента?')] : null,
      ),
    );
  }

  async function avito() {
    let status;
    try {
      status = await api.get('/admin/avito/status', { tenant });
    } catch (e) {
      if (e.code === 'invalid_admin_token') return handle(e);
      mount(avitoSlot, row('A', 'av', 'Авито', pill('off', 'Недоступно'), h('div', { class: 'small muted' }, unavailable(e))));
      return;
    }
    const hook = status.webhook || {};
    const connected = Boolean(status.connected);
    const state = status.state === 'unauthorized' ? pill('err', 'Доступ отозван') : connected ? pill('ok', 'Подключено') : pill('off', 'Не подключено');
    const hookPill = { registered: pill('ok', 'вебхук подключён'), failed: pill('err', 'вебхук не подключён'), unsubscribed: pill('off', 'вебхук отключён') }[hook.state];
    const subs = h('div', { class: 'stack small', id: 'avito-subscriptions' });
    mount(
      avitoSlot,
      row(
        'A',
        'av',
        'Авито',
        h('span', { class: 'row' }, state, connected ? hookPill || pill('wait', 'вебхук не проверен') : null),
        h(
          'div',
          { class: 'stack' },
          h(
            'div',
            { class: 'small muted' },
            connected
              ? [status.account_name || status.account_login || `аккаунт ${status.account_id}`, `обновлено ${fmtDateTime(hook.at || status.refreshed_at || status.connected_at)}`].join(' · ')
              : status.oauth_available
                ? 'Клиент подключает Авито в кабинете (вход через Авито или свои ключи).'
                : 'Вход через Авито не настроен (AVITO_CLIENT_ID); клиент может подключить свои ключи.',
          ),
          hook.error ? h('div', { class: 'small form-error' }, String(hook.error)) : null,
          connected ? subs : null,
        ),
        connected
          ? [
              button('Обновить вебхук', '', async () => (await pubApi()).post('/pub/avito/refresh')),
              button('Отключить', 'btn-danger', () => api.post('/admin/avito/logout', {}, { tenant }), 'Отключить Авито клиента?'),
            ]
          : null,
      ),
    );
    if (connected) subscriptions(subs);
  }

  async function subscriptions(target) {
    try {
      const list = (await api.get('/admin/avito/subscriptions', { tenant })).subscriptions || [];
      mount(
        target,
        h('div', { class: 'section-title' }, `Подписки вебхуков · ${list.length}`),
        list.length
          ? list.map((s) =>
              h(
                'div',
                { class: 'row between subscription' },
                h('code', { class: 'grow' }, String(s.url || '')),
                button('Отписать', 'btn-ghost', () => api.post('/admin/avito/unsubscribe', { url: s.url }, { tenant }), 'Отписать этот адрес от сообщений Авито?'),
              ),
            )
          : h('span', { class: 'muted' }, 'Подписок нет.'),
      );
    } catch (e) {
      mount(target, h('span', { class: 'muted' }, `Подписки: ${errorText(e)}`));
    }
  }

  async function load() {
    await Promise.all([whatsapp(), telegram(), avito()]);
  }

  const stopPolling = every(6000, () => Promise.all([whatsapp(), telegram()]));
  avito();
  return { el, stop: stopPolling };
}
