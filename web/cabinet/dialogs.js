// Dialogs: the inbox and a thread with the lead's, the bot's and the operator's
// messages and each outgoing message's delivery status; takeover, release, reply.

import { errorText } from '../shared/api.js';
import { CHANNELS, banner, busy, card, empty, every, fmtPhone, fmtTime, h, mount, pill, toast } from '../shared/dom.js';

const STAGES = {
  greeting: 'Знакомство',
  qualifying: 'Выясняем потребность',
  offering: 'Предложение',
  closing: 'Оформление',
  handed_to_human: 'Передан человеку',
};

const DELIVERY = {
  queued: ['в очереди', ''],
  retrying: ['повторная отправка', ''],
  sent: ['отправлено', ''],
  delivered: ['доставлено', ''],
  read: ['прочитано', ''],
  received: ['', ''],
  failed: ['не доставлено', 'failed'],
  skipped: ['не отправлено', 'failed'],
};

function displayName(d) {
  if (d.name) return d.name;
  if (d.channel === 'whatsapp' && /^\d{10,15}$/.test(d.peer || '')) return fmtPhone(d.peer);
  return d.peer || `Контакт ${d.contact_id}`;
}

export function dialogsSection(ctx) {
  const { api } = ctx;
  let selected = Number((window.location.hash.split('/')[1]) || 0) || null;
  let dialogs = [];
  let threadKey = '';

  const list = h('div', { class: 'dialog-list', id: 'dialog-list' }, h('div', { class: 'empty' }, h('span', { class: 'spinner' })));
  const thread = h('div', { class: 'thread', id: 'dialog-thread' });
  const wrap = h('section', { class: 'card dialogs' }, list, thread);

  function renderList() {
    if (!dialogs.length) {
      mount(list, empty('Диалогов пока нет', 'Они появятся, когда клиенты напишут в подключённые мессенджеры.'));
      return;
    }
    mount(
      list,
      dialogs.map((d) => {
        const item = h(
          'button',
          { class: `dialog-item ${d.contact_id === selected ? 'active' : ''}`, type: 'button', dataset: { contact: d.contact_id } },
          h('span', { class: 'name' }, displayName(d)),
          h('span', { class: 'time' }, fmtTime(d.last_at)),
          h('span', { class: 'last' }, d.last_message || '—'),
          h(
            'span',
            { class: 'badges' },
            h('span', { class: 'tag' }, CHANNELS[d.channel] || d.channel),
            d.bot_paused ? pill('wait', 'Отвечает оператор') : null,
            d.needs_human && !d.bot_paused ? pill('err', 'Нужен человек') : null,
          ),
        );
        item.addEventListener('click', () => open(d.contact_id));
        return item;
      }),
    );
  }

  async function loadList() {
    try {
      dialogs = (await api.get('/pub/dialogs')).dialogs || [];
      renderList();
    } catch (e) {
      mount(list, h('div', { class: 'empty' }, banner('err', errorText(e))));
    }
  }

  function open(contactId) {
    selected = contactId;
    threadKey = '';
    history.replaceState(null, '', `#dialogs/${contactId}`);
    wrap.classList.add('has-thread');
    renderList();
    mount(thread, h('div', { class: 'empty' }, h('span', { class: 'spinner' })));
    loadThread();
  }

  function close() {
    selected = null;
    history.replaceState(null, '', '#dialogs');
    wrap.classList.remove('has-thread');
    renderList();
    showPlaceholder();
  }

  function showPlaceholder() {
    mount(thread, empty('Выберите диалог', 'Слева — все переписки, новые сверху.'));
  }

  function message(m) {
    const mine = m.direction === 'out';
    const author = m.author || (mine ? 'bot' : 'lead');
    const [label, cls] = DELIVERY[m.status] || [m.status || '', ''];
    const files = Array.isArray(m.attachments) ? m.attachments : [];
    return h(
      'div',
      { class: `msg ${mine ? 'right' : 'left'} ${author}`, dataset: { author, status: m.status || '' } },
      mine ? h('div', { class: 'who' }, author === 'operator' ? 'Оператор' : 'Бот') : null,
      h(
        'div',
        { class: 'bubble' },
        m.text || '',
        files.map((f) => h('div', { class: 'small' }, `📎 ${f.name || f.type || 'вложение'}`)),
      ),
      h('div', { class: 'meta' }, h('span', {}, fmtTime(m.ts)), mine && label ? h('span', { class: cls }, label) : null),
    );
  }

  async function loadThread() {
    if (!selected) return;
    const contactId = selected;
    let data;
    try {
      data = await api.get(`/pub/dialogs/${contactId}`);
    } catch (e) {
      if (contactId === selected) mount(thread, h('div', { class: 'empty' }, banner('err', errorText(e))));
      return;
    }
    if (contactId !== selected) return;
    const messages = data.messages || [];
    const key = JSON.stringify([data.bot_paused, messages.map((m) => [m.id, m.status])]);
    if (key === threadKey) return;
    const first = !threadKey;
    threadKey = key;
    const summary = dialogs.find((d) => d.contact_id === contactId) || {};
    const contact = data.contact || {};
    const state = data.state || {};
    const paused = Boolean(data.bot_paused);

    const takeover = h('button', { class: 'btn btn-sm', type: 'button', id: 'dialog-takeover' }, 'Взять диалог');
    const release = h('button', { class: 'btn btn-sm', type: 'button', id: 'dialog-release' }, 'Вернуть боту');
    takeover.addEventListener('click', () => action(takeover, 'takeover', 'Вы ведёте диалог, бот молчит'));
    release.addEventListener('click', () => action(release, 'release', 'Диалог снова ведёт бот'));

    const chat = h('div', { class: 'chat', id: 'dialog-messages' }, messages.length ? messages.map(message) : empty('Сообщений нет'));
    const text = h('textarea', { rows: 1, placeholder: 'Ответ клиенту…', id: 'dialog-reply-text', 'aria-label': 'Ответ клиенту' });
    const send = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Отправить');
    const form = h('form', { class: 'composer', id: 'dialog-reply' }, text, send);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const body = text.value.trim();
      if (!body) return;
      busy(send, async () => {
        try {
          await api.post(`/pub/dialogs/${contactId}/reply`, { text: body });
          text.value = '';
          toast('Ответ поставлен в очередь на отправку');
          threadKey = '';
          await loadThread();
        } catch (e) {
          toast(errorText(e), 'err');
        }
      });
    });
    const back = h('button', { class: 'btn btn-ghost btn-sm back-link', type: 'button' }, '← Все диалоги');
    back.addEventListener('click', close);

    const previousScroll = thread.querySelector('.chat');
    const atBottom = !previousScroll || previousScroll.scrollTop + previousScroll.clientHeight >= previousScroll.scrollHeight - 40;
    mount(
      thread,
      h(
        'div',
        { class: 'thread-head' },
        back,
        h(
          'div',
          { class: 'grow' },
          h('h2', {}, contact.name || displayName({ ...summary, contact_id: contactId })),
          h(
            'div',
            { class: 'small muted' },
            [CHANNELS[summary.channel] || summary.channel, contact.whatsapp_phone ? fmtPhone(contact.whatsapp_phone) : summary.peer, STAGES[state.stage] || state.stage]
              .filter(Boolean)
              .join(' · '),
          ),
        ),
        paused ? pill('wait', 'Отвечает оператор') : pill('ok', 'Отвечает бот'),
        paused ? release : takeover,
      ),
      chat,
      form,
    );
    if (first || atBottom) chat.scrollTop = chat.scrollHeight;
  }

  async function action(button, name, done) {
    await busy(button, async () => {
      try {
        await api.post(`/pub/dialogs/${selected}/${name}`);
        toast(done);
        threadKey = '';
        await Promise.all([loadThread(), loadList()]);
      } catch (e) {
        toast(errorText(e), 'err');
      }
    });
  }

  showPlaceholder();
  if (selected) {
    wrap.classList.add('has-thread');
  }
  const stopList = every(8000, loadList);
  const stopThread = every(4000, loadThread);
  return {
    el: wrap,
    stop: () => {
      stopList();
      stopThread();
    },
  };
}
