// Connecting the client's accounts: WhatsApp (live QR), Telegram (live QR, then the
// 2FA password) and Avito (OAuth or own credentials, webhook status). Used by the
// cabinet and by the single-purpose connect pages. Each panel polls only while it
// is running (stop() when its page is hidden) and redraws only what changed.

import { ApiError, errorText } from './api.js';
import { banner, busy, every, fmtDateTime, fmtPhone, h, mount, pill, toast } from './dom.js';

const WA_STEPS = [
  'Откройте WhatsApp на телефоне.',
  'Нажмите «Настройки» (на Android — ⋮) → «Связанные устройства».',
  'Нажмите «Привязать устройство» и наведите камеру на этот код.',
];

const TG_STEPS = [
  'Откройте Telegram на телефоне.',
  'Перейдите в «Настройки» → «Устройства».',
  'Нажмите «Подключить устройство» и наведите камеру на этот код.',
];

function qrBlock(img, steps, note) {
  return h(
    'div',
    { class: 'qr-layout' },
    h('div', { class: 'qr-box' }, img),
    h('div', { class: 'stack' }, h('ol', { class: 'steps' }, steps.map((s) => h('li', {}, s))), note),
  );
}

function connectedBlock(title, detail) {
  return h(
    'div',
    { class: 'connected', dataset: { connected: 'true' } },
    h('span', { class: 'check' }, '✓'),
    h('div', {}, h('strong', {}, title), detail ? h('div', { class: 'small' }, detail) : null),
  );
}

function waiting(text) {
  return h('div', { class: 'row muted' }, h('span', { class: 'spinner' }), h('span', {}, text));
}

/** WhatsApp: start, the QR as the session refreshes it, "connected as …", logout. */
export class WhatsAppPanel {
  constructor(api) {
    this.api = api;
    this.pill = h('span', {}, pill('off', 'Проверяем…'));
    this.body = h('div', { class: 'channel-body', id: 'wa-body' }, waiting('Проверяем состояние…'));
    this.img = h('img', { id: 'wa-qr', alt: 'QR-код для входа в WhatsApp', width: 208, height: 208 });
    this.qrText = null;
    this.qrUrl = null;
    this.view = null;
    // null until the first answer; false when this server has no built-in WhatsApp
    // (only the QR from an external provider's webhook is shown then).
    this.sessions = null;
    this.status = null;
    this.error = null;
  }

  get done() {
    return Boolean(this.status && this.status.ready);
  }

  start() {
    this.stopPolling = every(2000, () => this.refresh());
  }

  stop() {
    if (this.stopPolling) this.stopPolling();
  }

  async refresh() {
    let status = null;
    if (this.sessions !== false) {
      try {
        status = await this.api.get('/pub/wa/status');
        this.sessions = true;
        this.error = null;
      } catch (e) {
        if (e instanceof ApiError && e.unavailable && e.status === 404) {
          this.sessions = false;
        } else {
          this.error = errorText(e);
          this.render();
          return;
        }
      }
    }
    this.status = status;
    // The latest QR is shown whatever its source: the built-in session or an external
    // provider's `qr` webhook (both land in the same cache).
    const ready = status && (status.ready || status.state === 'ready');
    if (!ready) {
      await this.loadQr(status && status.qr_id);
    } else {
      this.setQr(null);
    }
    this.render();
  }

  async loadQr(qrId) {
    let svg = null;
    try {
      svg = await this.api.text('/pub/wa/qr.svg', qrId ? { qr_id: qrId } : {});
    } catch (e) {
      this.error = errorText(e);
      return;
    }
    this.setQr(svg);
  }

  setQr(svg) {
    if (svg === this.qrText) return;
    this.qrText = svg;
    if (this.qrUrl) URL.revokeObjectURL(this.qrUrl);
    this.qrUrl = svg ? URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' })) : null;
    if (this.qrUrl) {
      this.img.src = this.qrUrl;
      this.img.dataset.version = String((Number(this.img.dataset.version) || 0) + 1);
    } else {
      this.img.removeAttribute('src');
    }
  }

  state() {
    if (this.error) return 'error';
    const s = this.status;
    if (this.sessions === false) return this.qrText ? 'qr' : 'external';
    if (!s) return 'loading';
    if (s.ready || s.state === 'ready') return 'ready';
    if (this.qrText) return 'qr';
    if (s.state === 'qr') return 'starting';
    return s.state || 'stopped';
  }

  render() {
    const state = this.state();
    this.body.dataset.state = state;
    const pills = {
      ready: pill('ok', 'Подключено'),
      qr: pill('wait', 'Ждёт сканирования'),
      starting: pill('wait', 'Запускается'),
      loading: pill('off', 'Проверяем…'),
      external: pill('off', 'Ждём QR-код'),
      failed: pill('err', 'Ошибка'),
      error: pill('err', 'Ошибка'),
      logged_out: pill('off', 'Не подключено'),
      stopped: pill('off', 'Не подключено'),
    };
    mount(this.pill, pills[state] || pills.stopped);
    // The QR image stays the same element while it refreshes, so it never flickers.
    const key = `${state}|${this.error || ''}|${(this.status && this.status.me) || ''}`;
    if (key === this.view) return;
    this.view = key;
    const s = this.status || {};
    switch (state) {
      case 'ready':
        mount(
          this.body,
          connectedBlock(
            s.me ? ['Подключено как ', h('span', { class: 'nowrap' }, fmtPhone(s.me))] : 'WhatsApp подключён',
            'Бот отвечает на новые сообщения в этом аккаунте.',
          ),
          h('div', { class: 'row' }, this.logoutButton()),
        );
        break;
      case 'qr':
        mount(
          this.body,
          qrBlock(
            this.img,
            WA_STEPS,
            h('p', { class: 'small muted' }, 'Код обновляется сам, страницу перезагружать не нужно.'),
          ),
        );
        break;
      case 'starting':
        mount(this.body, waiting('Запускаем WhatsApp и получаем QR-код…'));
        break;
      case 'loading':
        mount(this.body, waiting('Проверяем состояние…'));
        break;
      case 'external':
        mount(
          this.body,
          h('p', { class: 'muted' }, 'QR-код для входа появится здесь, как только сервер его получит.'),
          waiting('Ждём QR-код…'),
        );
        break;
      case 'error':
        mount(this.body, banner('err', this.error), h('div', { class: 'row' }, this.startButton('Попробовать снова')));
        break;
      case 'failed':
        mount(
          this.body,
          banner('err', 'WhatsApp не запустился', s.last_error ? ` (${s.last_error})` : '', '. Попробуйте ещё раз.'),
          h('div', { class: 'row' }, this.startButton('Попробовать снова')),
        );
        break;
      default:
        mount(
          this.body,
          h('p', { class: 'muted' }, 'Подключите WhatsApp, чтобы бот отвечал клиентам от вашего имени.'),
          h('div', { class: 'row' }, this.startButton('Подключить WhatsApp')),
        );
    }
  }

  startButton(label) {
    const button = h('button', { class: 'btn btn-primary', type: 'button', id: 'wa-start' }, label);
    button.addEventListener('click', () =>
      busy(button, async () => {
        this.error = null;
        try {
          await this.api.post('/pub/wa/start');
        } catch (e) {
          if (!(e instanceof ApiError && e.unavailable)) {
            this.error = errorText(e);
          } else {
            this.sessions = false;
          }
        }
        this.view = null;
        await this.refresh();
      }),
    );
    return button;
  }

  logoutButton() {
    const button = h('button', { class: 'btn btn-danger', type: 'button' }, 'Отключить WhatsApp');
    button.addEventListener('click', () => {
      if (!window.confirm('Отключить WhatsApp? Бот перестанет отвечать, для входа понадобится новый QR-код.')) return;
      busy(button, async () => {
        try {
          await this.api.post('/pub/wa/logout');
          toast('WhatsApp отключён');
        } catch (e) {
          toast(errorText(e), 'err');
        }
        this.view = null;
        await this.refresh();
      });
    });
    return button;
  }
}

/** Telegram: the QR, then the 2FA password when asked; errors in plain words. */
export class TelegramPanel {
  constructor(api) {
    this.api = api;
    this.pill = h('span', {}, pill('off', 'Проверяем…'));
    this.body = h('div', { class: 'channel-body', id: 'tg-body' }, waiting('Проверяем состояние…'));
    this.img = h('img', { id: 'tg-qr', alt: 'QR-код для входа в Telegram', width: 208, height: 208 });
    this.status = null;
    this.error = null;
    this.unavailable = null;
    this.view = null;
    this.qrId = null;
  }

  get done() {
    return Boolean(this.status && this.status.authorized);
  }

  start() {
    this.stopPolling = every(2000, () => this.refresh());
  }

  stop() {
    if (this.stopPolling) this.stopPolling();
  }

  async refresh() {
    try {
      this.status = await this.api.get('/pub/tg/status');
      this.unavailable = null;
      this.error = null;
    } catch (e) {
      this.status = null;
      if (e instanceof ApiError && (e.unavailable || e.code === 'tg_unavailable')) {
        this.unavailable = e.status === 404 ? 'Подключение Telegram пока не включено — напишите вашему агентству.' : errorText(e);
      } else {
        this.error = errorText(e);
      }
    }
    this.render();
  }

  setQr(qrId) {
    if (qrId === this.qrId) return;
    this.qrId = qrId;
    if (qrId) this.img.src = this.api.url('/pub/tg/qr.png', { qr_id: qrId });
    else this.img.removeAttribute('src');
  }

  state() {
    if (this.unavailable) return 'unavailable';
    if (this.error && !this.status) return 'error';
    const s = this.status;
    if (!s) return 'loading';
    if (s.authorized || s.state === 'authorized') return 'authorized';
    if (s.needs_2fa || s.state === 'need_2fa') return 'need_2fa';
    if (s.state === 'failed') return 'failed';
    if (s.qr_id) return 'qr';
    return 'idle';
  }

  render() {
    const state = this.state();
    this.body.dataset.state = state;
    const pills = {
      authorized: pill('ok', 'Подключено'),
      qr: pill('wait', 'Ждёт сканирования'),
      need_2fa: pill('wait', 'Нужен пароль'),
      failed: pill('err', 'Ошибка'),
      error: pill('err', 'Ошибка'),
      unavailable: pill('off', 'Недоступно'),
      loading: pill('off', 'Проверяем…'),
      idle: pill('off', 'Не подключено'),
    };
    mount(this.pill, pills[state]);
    const s = this.status || {};
    this.setQr(state === 'qr' ? s.qr_id : null);
    const me = s.me || {};
    const key = `${state}|${this.error || ''}|${this.unavailable || ''}|${me.username || ''}|${s.reason || ''}`;
    if (key === this.view) return;
    this.view = key;
    switch (state) {
      case 'authorized': {
        const who = me.username ? `@${me.username}` : me.first_name || '';
        mount(
          this.body,
          connectedBlock(who ? `Подключено как ${who}` : 'Telegram подключён', 'Бот отвечает на личные сообщения.'),
          h('div', { class: 'row' }, this.logoutButton()),
        );
        break;
      }
      case 'qr':
        mount(
          this.body,
          qrBlock(this.img, TG_STEPS, h('p', { class: 'small muted' }, 'Код обновляется сам, пока страница открыта.')),
        );
        break;
      case 'need_2fa':
        mount(this.body, this.passwordForm(s.password_hint));
        break;
      case 'failed':
        mount(
          this.body,
          banner('err', failureText(s.reason)),
          h('div', { class: 'row' }, this.startButton('Начать заново')),
        );
        break;
      case 'unavailable':
        mount(this.body, h('p', { class: 'muted' }, this.unavailable));
        break;
      case 'error':
        mount(this.body, banner('err', this.error), h('div', { class: 'row' }, this.startButton('Попробовать снова')));
        break;
      case 'loading':
        mount(this.body, waiting('Проверяем состояние…'));
        break;
      default:
        mount(
          this.body,
          h('p', { class: 'muted' }, 'Подключите личный аккаунт Telegram: бот будет отвечать на сообщения в нём.'),
          h('div', { class: 'row' }, this.startButton('Подключить Telegram')),
        );
    }
  }

  startButton(label) {
    const button = h('button', { class: 'btn btn-primary', type: 'button', id: 'tg-start' }, label);
    button.addEventListener('click', () =>
      busy(button, async () => {
        try {
          this.status = await this.api.get('/pub/tg/start');
          this.error = null;
        } catch (e) {
          if (e.code === 'already_authorized') toast('Telegram уже подключён');
          else toast(errorText(e), 'err');
        }
        this.view = null;
        await this.refresh();
      }),
    );
    return button;
  }

  passwordForm(hint) {
    const input = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const error = h('div', { class: 'form-error', role: 'alert' });
    const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Войти');
    const form = h(
      'form',
      { class: 'form', id: 'tg-2fa' },
      h('p', {}, 'В аккаунте включена двухэтапная проверка. Введите облачный пароль Telegram.'),
      h('label', { class: 'field' }, h('span', {}, 'Облачный пароль'), input, hint ? h('span', { class: 'hint' }, `Подсказка: ${hint}`) : null),
      error,
      h('div', { class: 'row' }, submit),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(submit, async () => {
        error.textContent = '';
        try {
          this.status = await this.api.post('/pub/tg/2fa', { tenant: Number(this.api.tenant), password: input.value });
          this.view = null;
          this.render();
        } catch (e) {
          error.textContent = errorText(e);
          input.select();
        }
      });
    });
    return form;
  }

  logoutButton() {
    const button = h('button', { class: 'btn btn-danger', type: 'button' }, 'Отключить Telegram');
    button.addEventListener('click', () => {
      if (!window.confirm('Отключить Telegram? Бот перестанет отвечать в этом аккаунте.')) return;
      busy(button, async () => {
        try {
          await this.api.post('/pub/tg/logout');
          toast('Telegram отключён');
        } catch (e) {
          toast(errorText(e), 'err');
        }
        this.view = null;
        await this.refresh();
      });
    });
    return button;
  }
}

function failureText(reason) {
  const ended = 'Сеанс Telegram завершён: подключите аккаунт заново.';
  const known = {
    qr_expired: 'QR-код истёк, пока его не отсканировали.',
    expired: 'QR-код истёк, пока его не отсканировали.',
    session_revoked: 'Сеанс завершили на телефоне (Настройки → Устройства). Подключите аккаунт заново.',
    auth_key_unregistered: ended,
    auth_key_duplicated: ended,
    auth_key_invalid: ended,
    auth_key_perm_empty: ended,
    session_expired: ended,
    user_deactivated: 'Этот аккаунт Telegram удалён.',
    user_deactivated_ban: 'Этот аккаунт Telegram заблокирован.',
  };
  return known[reason] || 'Вход не удался. Попробуйте ещё раз.';
}

const WEBHOOK_STATES = {
  registered: ['ok', 'Вебхук подключён'],
  failed: ['err', 'Вебхук не подключён'],
  unsubscribed: ['off', 'Вебхук отключён'],
};

/** Avito: OAuth button or own credentials; the webhook status and a refresh. */
export class AvitoPanel {
  constructor(api) {
    this.api = api;
    this.pill = h('span', {}, pill('off', 'Проверяем…'));
    this.body = h('div', { class: 'channel-body', id: 'avito-body' }, waiting('Проверяем состояние…'));
  }

  start() {
    this.refresh();
  }

  stop() {}

  async refresh() {
    try {
      this.render(await this.api.get('/pub/avito/status'));
    } catch (e) {
      mount(this.pill, pill(e.unavailable ? 'off' : 'err', e.unavailable ? 'Недоступно' : 'Ошибка'));
      mount(this.body, e.unavailable ? h('p', { class: 'muted' }, errorText(e)) : banner('err', errorText(e)));
    }
  }

  render(s) {
    if (s.state === 'not_connected' || !s.connected) {
      const unauthorized = s.state === 'unauthorized';
      mount(this.pill, unauthorized ? pill('err', 'Доступ отозван') : pill('off', 'Не подключено'));
      mount(
        this.body,
        unauthorized ? banner('err', 'Авито отозвало доступ. Подключите аккаунт заново.') : null,
        s.last_error && !unauthorized ? banner('err', String(s.last_error)) : null,
        s.oauth_available
          ? h(
              'div',
              { class: 'stack' },
              h('p', { class: 'muted' }, 'Войдите в аккаунт Авито и разрешите доступ к сообщениям.'),
              h(
                'div',
                { class: 'row' },
                h(
                  'a',
                  { class: 'btn btn-primary', id: 'avito-oauth', href: this.api.url('/connect/avito'), target: '_blank', rel: 'noopener' },
                  'Войти через Авито',
                ),
                unauthorized ? this.refreshButton() : null,
              ),
              h('div', { class: 'section-title' }, 'или своими ключами Авито Pro'),
            )
          : h('p', { class: 'muted' }, 'Укажите client_id и client_secret из раздела «API» в кабинете Авито Pro.'),
        this.credentialsForm(),
      );
      return;
    }
    const hook = s.webhook || {};
    const [kind, label] = WEBHOOK_STATES[hook.state] || ['wait', 'Вебхук ещё не подключён'];
    mount(this.pill, pill(kind === 'ok' ? 'ok' : kind === 'err' ? 'err' : 'wait', kind === 'ok' ? 'Подключено' : label));
    mount(
      this.body,
      connectedBlock(
        `Подключено: ${s.account_name || s.account_login || `аккаунт ${s.account_id || ''}`}`.trim(),
        s.mode === 'own_credentials' || s.mode === 'client_credentials' ? 'Свои ключи Авито Pro' : 'Вход через Авито',
      ),
      h(
        'dl',
        { class: 'kv' },
        h('dt', {}, 'Вебхук'),
        h(
          'dd',
          {},
          pill(kind, label),
          hook.state === 'failed'
            ? h('div', { class: 'small muted' }, 'Авито пока не принимает адрес для новых сообщений. Нажмите «Обновить статус» чуть позже; если не поможет — напишите вашему агентству.')
            : null,
        ),
        h('dt', {}, 'Проверено'),
        h('dd', {}, fmtDateTime(hook.at || s.refreshed_at || s.connected_at)),
      ),
      h('div', { class: 'row' }, this.refreshButton(), this.logoutButton()),
    );
  }

  refreshButton() {
    const button = h('button', { class: 'btn', type: 'button', id: 'avito-refresh' }, 'Обновить статус');
    button.addEventListener('click', () =>
      busy(button, async () => {
        try {
          this.render(await this.api.post('/pub/avito/refresh'));
          toast('Статус Авито обновлён');
        } catch (e) {
          toast(errorText(e), 'err');
          await this.refresh();
        }
      }),
    );
    return button;
  }

  logoutButton() {
    const button = h('button', { class: 'btn btn-danger', type: 'button' }, 'Отключить');
    button.addEventListener('click', () => {
      if (!window.confirm('Отключить Авито? Бот перестанет отвечать в чатах Авито.')) return;
      busy(button, async () => {
        try {
          await this.api.post('/pub/avito/logout');
          toast('Авито отключено');
        } catch (e) {
          toast(errorText(e), 'err');
        }
        await this.refresh();
      });
    });
    return button;
  }

  credentialsForm() {
    const id = h('input', { type: 'text', name: 'client_id', autocomplete: 'off', required: true });
    const secret = h('input', { type: 'password', name: 'client_secret', autocomplete: 'off', required: true });
    const error = h('div', { class: 'form-error', role: 'alert' });
    const submit = h('button', { class: 'btn', type: 'submit' }, 'Подключить своими ключами');
    const form = h(
      'form',
      { class: 'form', id: 'avito-credentials' },
      h('div', { class: 'grid-2' }, h('label', { class: 'field' }, h('span', {}, 'client_id'), id), h('label', { class: 'field' }, h('span', {}, 'client_secret'), secret)),
      error,
      h('div', { class: 'row' }, submit),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(submit, async () => {
        error.textContent = '';
        try {
          const status = await this.api.post('/pub/avito/credentials', {
            client_id: id.value.trim(),
            client_secret: secret.value.trim(),
          });
          toast('Авито подключено');
          this.render(status);
        } catch (e) {
          error.textContent = errorText(e);
        }
      });
    });
    return form;
  }
}
