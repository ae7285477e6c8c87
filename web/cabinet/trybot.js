// "Try the bot": a chat on the simulator channel. The page plays the lead; the
// replies come from the real pipeline (persona, catalog, sales state) and go nowhere.

import { errorText } from '../shared/api.js';
import { busy, card, fmtTime, grow, h, mount } from '../shared/dom.js';

function newPeer() {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `cabinet-${random[0].toString(36)}${random[1].toString(36)}`;
}

export function tryBotSection(ctx) {
  const { api } = ctx;
  const storageKey = `avio.trybot.${api.tenant}`;
  let peer = sessionStorage.getItem(storageKey) || newPeer();
  sessionStorage.setItem(storageKey, peer);
  let alive = true;
  let waiting = 0;

  const log = h('div', { class: 'chat', id: 'bot-chat', 'aria-live': 'polite' });
  const typing = h('div', { class: 'typing', hidden: true }, h('span', { class: 'spinner' }), 'Бот печатает…');
  const text = h('textarea', { id: 'bot-input', rows: 1, placeholder: 'Сообщение боту…', 'aria-label': 'Сообщение боту' });
  const send = h('button', { class: 'btn btn-primary', type: 'submit', id: 'bot-send' }, 'Отправить');
  const restart = h('button', { class: 'btn btn-ghost btn-sm', type: 'button' }, 'Новый диалог');

  function hint() {
    mount(
      log,
      h(
        'div',
        { class: 'empty', id: 'bot-empty' },
        h('strong', {}, 'Напишите первое сообщение'),
        'Например: «Сколько стоит угловой диван?» Бот ответит так же, как ответил бы покупателю в WhatsApp.',
      ),
    );
    log.appendChild(typing);
  }

  function add(kind, body, ts) {
    const empty = log.querySelector('#bot-empty');
    if (empty) empty.remove();
    const item = h(
      'div',
      { class: `msg ${kind === 'me' ? 'right me' : 'left bot'}`, dataset: { author: kind } },
      kind === 'bot' ? h('div', { class: 'who' }, 'Бот') : null,
      h('div', { class: 'bubble' }, body),
      h('div', { class: 'meta' }, fmtTime(ts || Date.now())),
    );
    log.insertBefore(item, typing);
    log.scrollTop = log.scrollHeight;
  }

  async function collect() {
    // The first reply may take the debounce plus the LLM; then pick up any that follow.
    let got = 0;
    for (let round = 0; alive && round < 4; round++) {
      let data;
      try {
        data = await api.get('/pub/simulator/replies', { peer, wait_ms: got ? 1500 : 20000 });
      } catch (e) {
        add('bot', `⚠ ${errorText(e)}`);
        return;
      }
      const replies = data.replies || [];
      for (const reply of replies) {
        const files = (reply.files || []).length ? `\n📎 ${(reply.files || []).join(', ')}` : '';
        add('bot', `${reply.text || ''}${files}`, reply.ts);
      }
      got += replies.length;
      if (got) typing.hidden = true;
      if (got && !replies.length) return;
    }
    if (!got && alive) add('bot', 'Бот пока не ответил. Возможно, автоответ выключен в настройках.');
  }

  const form = h('form', { class: 'composer', id: 'bot-form' }, text, send);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const message = text.value.trim();
    if (!message) return;
    busy(send, async () => {
      try {
        await api.post('/pub/simulator/message', { peer, text: message, name: 'Проверка из кабинета', channel: 'whatsapp' });
      } catch (e) {
        add('bot', `⚠ ${errorText(e)}`);
        return;
      }
      text.value = '';
      grow(text);
      add('me', message);
      waiting += 1;
      typing.hidden = false;
      log.scrollTop = log.scrollHeight;
      collect().finally(() => {
        waiting -= 1;
        typing.hidden = waiting <= 0;
      });
    });
  });
  text.addEventListener('input', () => grow(text));
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  restart.addEventListener('click', () => {
    peer = newPeer();
    sessionStorage.setItem(storageKey, peer);
    hint();
    text.focus();
  });

  hint();
  const el = card(
    'Чат с ботом',
    { actions: restart },
    h('p', { class: 'small muted' }, 'Это тестовый канал: ответы никуда не отправляются и не попадают к клиентам.'),
    log,
    form,
  );
  return { el, stop: () => { alive = false; } };
}
