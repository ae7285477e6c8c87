// Talking to the daemon: JSON requests, SPEC error bodies turned into ApiError, and
// every error code said in plain Russian.

export class ApiError extends Error {
  constructor(status, body) {
    const code = (body && (body.error || body.detail)) || (status === 0 ? 'network' : `http_${status}`);
    super(code);
    this.status = status;
    this.body = body || {};
    this.code = code;
  }

  /** The route is not there (a channel not built into this server) or the service is down. */
  get unavailable() {
    return (this.status === 404 && !this.body.error && !this.body.detail) || this.status === 501 || this.status === 503;
  }
}

async function parse(response) {
  const text = await response.text();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    return { raw: text };
  }
}

export async function request(method, url, { body, headers, signal } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...(headers || {}) }, signal, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { error: 'network' });
  }
  const data = await parse(response);
  if (!response.ok || data.ok === false) throw new ApiError(response.status, data);
  return data;
}

export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  if (!text) return path;
  return `${path}${path.includes('?') ? '&' : '?'}${text}`;
}

/** The cabinet's client: every call carries ?tenant=&k=. */
export class PubApi {
  constructor(tenant, key) {
    this.tenant = tenant;
    this.key = key;
  }

  url(path, params) {
    return withQuery(path, { tenant: this.tenant, k: this.key, ...(params || {}) });
  }

  get(path, params) {
    return request('GET', this.url(path, params));
  }

  post(path, body, params) {
    return request('POST', this.url(path, params), { body: body === undefined ? {} : body });
  }

  /** The text of a GET (the WhatsApp QR SVG), or null on 404. */
  async text(path, params) {
    let response;
    try {
      response = await fetch(this.url(path, params), { cache: 'no-store' });
    } catch {
      throw new ApiError(0, { error: 'network' });
    }
    if (response.status === 404) return null;
    if (!response.ok) throw new ApiError(response.status, await parse(response));
    return response.text();
  }
}

/** The link's tenant and key, from the page address. */
export function linkParams() {
  const query = new URLSearchParams(window.location.search);
  return { tenant: query.get('tenant') || '', key: query.get('k') || '' };
}

/** The admin panel's client: `X-Admin-Token` on every call. */
export class AdminApi {
  constructor(token) {
    this.token = token;
  }

  call(method, path, body, params) {
    return request(method, withQuery(path, params), { body, headers: { 'X-Admin-Token': this.token } });
  }

  get(path, params) {
    return this.call('GET', path, undefined, params);
  }

  post(path, body, params) {
    return this.call('POST', path, body === undefined ? {} : body, params);
  }

  patch(path, body) {
    return this.call('PATCH', path, body);
  }

  del(path, params) {
    return this.call('DELETE', path, undefined, params);
  }
}

const MESSAGES = {
  network: 'Нет связи с сервером. Проверьте интернет и попробуйте ещё раз.',
  invalid_key: 'Ссылка недействительна.',
  invalid_admin_token: 'Неверный токен администратора.',
  tenant_not_found: 'Клиент не найден.',
  tenant_exists: 'Клиент с таким номером уже есть.',
  key_already_exists: 'У клиента уже есть ключ: сначала удалите его.',
  payload_too_large: 'Слишком большой запрос.',
  internal_error: 'Внутренняя ошибка сервера. Попробуйте позже.',
  qr_expired: 'QR-код истёк. Запросите новый.',
  qr_not_found: 'QR-кода пока нет.',
  already_authorized: 'Telegram уже подключён.',
  bad_password: 'Пароль не подошёл. Проверьте раскладку и Caps Lock и попробуйте ещё раз.',
  not_waiting_2fa: 'Сейчас пароль не нужен: начните подключение заново.',
  wa_max_sessions: 'На сервере занято максимальное число сессий WhatsApp. Обратитесь в агентство.',
  avito_not_configured:
    'Вход через Авито не настроен у агентства. Подключите Авито своими client_id и client_secret.',
  avito_not_connected: 'Авито не подключено.',
  avito_unauthorized: 'Авито отозвало доступ. Подключите аккаунт заново.',
  avito_invalid_credentials: 'Авито не приняло client_id или client_secret. Проверьте их в кабинете Авито Pro.',
  avito_rejected: 'Авито отклонило запрос. Попробуйте позже.',
  avito_unavailable: 'Авито сейчас не отвечает. Попробуйте позже.',
  invalid_state: 'Ссылка входа через Авито устарела. Начните заново.',
  empty_file: 'Файл пустой.',
  unsupported_type: 'Такой файл не подходит: нужен PDF, CSV, XLSX, XLS или ODS.',
  catalog_not_found: 'Каталог ещё не загружен.',
  job_not_found: 'Задача обработки не найдена.',
  contact_not_found: 'Диалог не найден.',
  no_channel_for_contact: 'Не знаем, через какой канал ответить этому контакту.',
  outbox_disabled: 'Отправка сообщений выключена на сервере (OUTBOX_ENABLED).',
  not_whitelisted: 'Получатель не входит в белый список отправки (OUTBOX_WHITELIST).',
  dead_letter_not_found: 'Это сообщение уже не в очереди.',
};

const REASONS = {
  text_required: 'Введите текст.',
  text_too_long: 'Текст слишком длинный.',
  missing_file: 'Выберите файл.',
  missing_client_id: 'Укажите client_id.',
  missing_client_secret: 'Укажите client_secret.',
  missing_password: 'Введите пароль.',
  invalid_tenant: 'Номер клиента должен быть целым положительным числом.',
  expected_object: 'Неверный формат данных.',
  malformed_json: 'Неверный JSON.',
};

/** A sentence for the person in front of the page. */
export function errorText(err) {
  if (!(err instanceof ApiError)) return 'Что-то пошло не так. Обновите страницу.';
  const body = err.body || {};
  if (err.code === 'tg_unavailable') {
    return body.reason === 'not_configured'
      ? 'Подключение Telegram пока не включено — напишите вашему агентству.'
      : 'Telegram сейчас недоступен. Попробуйте через минуту.';
  }
  if (err.code === 'file_too_large') {
    const mb = body.max_size_bytes ? Math.round(body.max_size_bytes / 1024 / 1024) : null;
    return mb ? `Файл слишком большой: не больше ${mb} МБ.` : 'Файл слишком большой.';
  }
  if (err.code === 'invalid_payload') {
    const reason = String(body.reason || '');
    return REASONS[reason] || `Неверные данные: ${reason || 'проверьте поля'}.`;
  }
  if (MESSAGES[err.code]) return MESSAGES[err.code];
  if (err.unavailable) return 'Эта функция на сервере пока не подключена.';
  if (err.status === 413) return MESSAGES.payload_too_large;
  if (err.status >= 500) return MESSAGES.internal_error;
  return `Ошибка: ${err.code}`;
}
