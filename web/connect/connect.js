// The single-purpose connect pages a client gets as a link: /connect/wa and
// /connect/tg. One channel, its QR, its state, and a clear "done".

import { ApiError, PubApi, errorText, linkParams } from '../shared/api.js';
import { TelegramPanel, WhatsAppPanel } from '../shared/channels.js';
import { $, h, mount } from '../shared/dom.js';
import { invalidLink } from '../shared/invalid.js';

async function main() {
  const channel = document.body.dataset.channel;
  const { tenant, key } = linkParams();
  const api = new PubApi(tenant, key);
  let cfg;
  try {
    cfg = (await api.get('/pub/settings/get')).cfg || {};
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'invalid_key' || e.code === 'invalid_payload')) invalidLink();
    else mount($('#connect-body'), h('div', { class: 'banner err' }, errorText(e)));
    return;
  }
  const brand = (cfg.passport || {}).brand || cfg.name || '';
  if (brand) $('#connect-brand').textContent = brand;
  const panel = channel === 'tg' ? new TelegramPanel(api) : new WhatsAppPanel(api);
  mount($('#connect-pill'), panel.pill);
  mount($('#connect-body'), panel.body);
  panel.start();
}

main();
