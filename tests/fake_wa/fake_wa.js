// A stand-in for web.whatsapp.com for Avio's tests: exactly the page surfaces Avio's
// adapter touches (window.Debug, window.require modules with Backbone-like events),
// as the real page exposes them per whatsapp-web.js, and nothing more. "WhatsApp's
// servers" are the test's axum server: it issues QR refs, pairs a scanned ref with a
// phone number, delivers incoming messages and records what the page sent.
(() => {
  'use strict';

  // --- Backbone-like events: on/off/once, `change:<attr>` called as (model, value).
  class Emitter {
    constructor() {
      this._handlers = {};
    }
    on(event, cb) {
      (this._handlers[event] = this._handlers[event] || []).push(cb);
      return this;
    }
    off(event, cb) {
      this._handlers[event] = (this._handlers[event] || []).filter((h) => h !== cb && h._orig !== cb);
      return this;
    }
    once(event, cb) {
      const wrapper = (...args) => {
        this.off(event, wrapper);
        cb(...args);
      };
      wrapper._orig = cb;
      return this.on(event, wrapper);
    }
    trigger(event, ...args) {
      for (const handler of (this._handlers[event] || []).slice()) handler(...args);
    }
  }

  class Model extends Emitter {
    constructor(attrs) {
      super();
      Object.assign(this, attrs);
    }
    set(attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (this[key] === value) continue;
        this[key] = value;
        this.trigger('change:' + key, this, value);
      }
    }
  }

  class Collection extends Emitter {
    constructor() {
      super();
      this._models = new Map();
    }
    get(id) {
      return this._models.get(typeof id === 'string' ? id : id && id._serialized) || undefined;
    }
    add(model) {
      this._models.set(model.id._serialized, model);
      // Models forward their changes to the collection, as Backbone does.
      const original = model.trigger.bind(model);
      model.trigger = (event, ...args) => {
        original(event, ...args);
        if (event.startsWith('change:')) this.trigger(event, ...args);
      };
      this.trigger('add', model);
      return model;
    }
    getModelsArray() {
      return Array.from(this._models.values());
    }
  }

  // --- Wids.
  const createWid = (text) => {
    const [user, server] = String(text).split('@');
    return {
      user,
      server,
      _serialized: user + '@' + server,
      isGroup: () => server === 'g.us',
      isUser: () => server === 'c.us',
      isLid: () => server === 'lid',
      toJid: () => user + '@' + (server === 'c.us' ? 's.whatsapp.net' : server),
      toString() {
        return this._serialized;
      },
    };
  };

  class MsgKey {
    constructor({ from, to, id, participant, selfDir }) {
      this.fromMe = selfDir === 'out';
      this.remote = to;
      this.id = id;
      this.participant = participant;
      this.from = from;
      this._serialized = this.fromMe + '_' + to._serialized + '_' + id;
    }
    toString() {
      return this._serialized;
    }
    static async newId() {
      const bytes = crypto.getRandomValues(new Uint8Array(10));
      return '3EB0' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
    }
  }

  class MsgModel extends Model {
    serialize() {
      const out = {};
      for (const [key, value] of Object.entries(this)) if (!key.startsWith('_')) out[key] = value;
      return out;
    }
  }

  // --- Server transport (the fake's own business, not a page surface).
  const api = async (path, body) => {
    const response = await fetch(path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response.json();
  };

  const randomKey = () => crypto.getRandomValues(new Uint8Array(32));
  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
  const sha256 = async (bytes) => b64(await crypto.subtle.digest('SHA-256', bytes));

  // --- Persistence: creds in IndexedDB (strict durability) and localStorage.
  const openDb = () =>
    new Promise((resolve, reject) => {
      const request = indexedDB.open('wawc', 1);
      request.onupgradeneeded = () => request.result.createObjectStore('user');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  const dbOp = async (mode, fn) => {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction('user', mode, { durability: 'strict' });
      const result = fn(tx.objectStore('user'));
      tx.oncomplete = () => resolve(result && result.result);
      tx.onerror = () => reject(tx.error);
    });
  };
  const loadCreds = async () => {
    const stored = await dbOp('readonly', (store) => store.get('creds'));
    if (stored) return stored;
    const local = localStorage.getItem('WACreds');
    return local ? JSON.parse(local) : null;
  };
  const saveCreds = async (creds) => {
    await dbOp('readwrite', (store) => store.put(creds, 'creds'));
    localStorage.setItem('WACreds', JSON.stringify(creds));
  };
  const clearCreds = async () => {
    await dbOp('readwrite', (store) => store.delete('creds'));
    localStorage.removeItem('WACreds');
  };

  // --- The modules.
  const Socket = new Model({ state: 'OPENING', hasSynced: false });
  const Conn = new Model({ ref: null, platform: 'web', pushname: null });
  Conn.serialize = () => ({ pushname: Conn.pushname, platform: Conn.platform, ref: Conn.ref });
  const Cmd = new Emitter();
  const Msg = new Collection();
  const Chat = new Collection();
  const uploads = new Map(); // filehash -> {bytes, mimetype}
  const incomingMedia = new Map(); // directPath -> Uint8Array
  const identityKey = randomKey();
  const noiseKey = randomKey();
  const advSecret = b64(randomKey());
  let device = 'dev-' + b64(randomKey()).replace(/[^A-Za-z0-9]/g, '').slice(0, 16);
  let me = null;
  let unread = 0;

  const chatFor = (wid) => {
    let chat = Chat.get(wid);
    if (!chat) {
      chat = new Model({ id: wid, unreadCount: 0 });
      Chat.add(chat);
    }
    return chat;
  };

  class OpaqueData {
    constructor(blob, type) {
      this._blob = blob;
      this.type = type;
    }
    static async createFromData(blob, type) {
      return new OpaqueData(blob, type);
    }
    url() {
      return 'blob:fake/' + this.type;
    }
    autorelease() {}
  }

  class MediaData {
    constructor(attrs) {
      Object.assign(this, attrs);
    }
    set(attrs) {
      Object.assign(this, attrs);
    }
    toJSON() {
      const out = {};
      for (const [key, value] of Object.entries(this)) if (key !== 'mediaBlob') out[key] = value;
      return out;
    }
  }

  const modules = {
    WAWebSocketModel: { Socket },
    WAWebConnModel: { Conn },
    WAWebCmd: {
      Cmd: Object.assign(Cmd, {
        refreshQR: () => requestRef(),
      }),
    },
    WAWebSignalStoreApi: {
      waSignalStore: { getRegistrationInfo: async () => ({ identityKeyPair: { pubKey: identityKey } }) },
    },
    WAWebUserPrefsInfoStore: { waNoiseInfo: { get: async () => ({ staticKeyPair: { pubKey: noiseKey } }) } },
    WABase64: { encodeB64: (bytes) => b64(bytes) },
    WAWebUserPrefsMultiDevice: { getADVSecretKey: async () => advSecret },
    WAWebCompanionRegClientUtils: { DEVICE_PLATFORM: 'CHROME' },
    WAWebUserPrefsMeUser: {
      getMaybeMePnUser: () => (me ? createWid(me + '@c.us') : null),
      getMaybeMeLidUser: () => null,
    },
    WAWebWidFactory: { createWid },
    WAWebCollections: { Msg, Chat },
    WAWebFindChatAction: { findOrCreateLatestChat: async (wid) => ({ chat: chatFor(wid) }) },
    WAWebMsgKey: MsgKey,
    WAWebGetEphemeralFieldsMsgActionsUtils: { getEphemeralFields: () => ({}) },
    WAWebMediaOpaqueData: OpaqueData,
    WAWebPrepRawMedia: {
      prepRawMedia: (opaque, options) => ({
        waitForPrep: async () => {
          const bytes = await opaque._blob.arrayBuffer();
          const filehash = await sha256(bytes);
          uploads.set(filehash, { bytes, mimetype: opaque.type, name: opaque._blob.name });
          const isImage = opaque.type.startsWith('image/') && !options.asDocument;
          return new MediaData({
            type: isImage ? 'image' : 'document',
            mimetype: opaque.type,
            filehash,
            filename: opaque._blob.name,
            size: bytes.byteLength,
            isGif: false,
            mediaBlob: opaque,
          });
        },
      }),
    },
    WAWebMediaStorage: {
      getOrCreateMediaObject: (filehash) => ({
        filehash,
        size: uploads.has(filehash) ? uploads.get(filehash).bytes.byteLength : 0,
        consolidate() {},
      }),
    },
    WAWebMmsMediaTypes: { msgToMediaType: ({ type }) => type },
    WAWebMediaMmsV4Upload: {
      uploadMedia: async ({ mediaObject }) => ({
        mediaEntry: {
          mmsUrl: 'https://mmg.fake/' + mediaObject.filehash,
          directPath: '/v/fake/' + encodeURIComponent(mediaObject.filehash),
          mediaKey: b64(randomKey()),
          mediaKeyTimestamp: Math.floor(Date.now() / 1000),
          encFilehash: mediaObject.filehash,
          uploadHash: mediaObject.filehash,
        },
      }),
    },
    WAWebSendMsgChatAction: {
      addAndSendMsgToChat: (chat, message) => {
        const model = new MsgModel(message);
        const upload = message.filehash ? uploads.get(message.filehash) : null;
        const record = {
          id: message.id._serialized,
          to: chat.id._serialized,
          type: message.type,
          body: message.body == null ? null : message.body,
          caption: message.caption == null ? null : message.caption,
          mimetype: message.mimetype || null,
          filename: message.filename || null,
          size: upload ? upload.bytes.byteLength : null,
        };
        const sent = (async () => {
          if (upload) record.sha256 = await sha256(upload.bytes);
          await api('/api/sent', { device, me, message: record });
          // Server, device and read receipts, as the phone on the other side reports them.
          for (const [ack, delay] of [[1, 100], [2, 400], [3, 800]]) {
            setTimeout(() => model.set({ ack }), delay);
          }
          return { messageSendResult: 'OK' };
        })();
        Msg.add(model);
        return [Promise.resolve(model), sent];
      },
    },
    WAWebDownloadManager: {
      downloadManager: {
        downloadAndMaybeDecrypt: async ({ directPath }) => {
          const bytes = incomingMedia.get(directPath);
          if (!bytes) throw Object.assign(new Error('media not found'), { status: 404 });
          return bytes.buffer;
        },
      },
    },
  };

  window.require = (name) => {
    if (!(name in modules)) throw new Error('Requiring unknown module "' + name + '"');
    return modules[name];
  };

  // --- Behaviour.
  let refTimer = null;
  const requestRef = async () => {
    clearTimeout(refTimer);
    if (me) return;
    const answer = await api('/api/ref', { device });
    if (me) return;
    Conn.set({ ref: answer.ref });
    refTimer = setTimeout(requestRef, answer.ttl_ms);
  };

  const connected = async () => {
    clearTimeout(refTimer);
    Conn.set({ pushname: 'Fake ' + me });
    Socket.set({ state: 'CONNECTED' });
    Socket.set({ hasSynced: true });
  };

  const logout = async (reason) => {
    await clearCreds();
    me = null;
    Cmd.trigger(reason);
    location.replace(location.pathname + '?post_logout=1');
  };

  const incoming = ({ message, media }) => {
    const fromMe = !!message.fromMe;
    const peer = createWid(fromMe ? message.to : message.from);
    const key = new MsgKey({
      from: fromMe ? createWid(me + '@c.us') : peer,
      to: peer,
      id: message.id,
      selfDir: fromMe ? 'out' : 'in',
    });
    const attrs = {
      id: key,
      type: message.type || 'chat',
      body: message.body,
      caption: message.caption,
      t: Math.floor(Date.now() / 1000),
      from: fromMe ? createWid(me + '@c.us') : peer,
      to: fromMe ? peer : createWid(me + '@c.us'),
      author: undefined,
      notifyName: message.notifyName,
      ack: fromMe ? 1 : 0,
      isNewMsg: true,
    };
    if (media) {
      const bytes = Uint8Array.from(atob(media.b64), (c) => c.charCodeAt(0));
      const directPath = '/v/in/' + message.id;
      incomingMedia.set(directPath, bytes);
      Object.assign(attrs, {
        directPath,
        mimetype: media.mimetype,
        filename: media.filename,
        size: bytes.byteLength,
        mediaKey: b64(randomKey()),
        body: '/9j/thumbnail-as-base64',
      });
    }
    chatFor(peer);
    Msg.add(new MsgModel(attrs));
    if (!fromMe) {
      unread += 1;
      // WhatsApp Web shows the unread count in the title (a browser-level CDP event).
      document.title = '(' + unread + ') WhatsApp';
    }
  };

  const poll = async () => {
    for (;;) {
      let events = [];
      try {
        events = await api('/api/poll?device=' + encodeURIComponent(device));
      } catch (e) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      for (const event of events) {
        if (event.type === 'paired') {
          me = event.me;
          await saveCreds({ device, me });
          await connected();
        } else if (event.type === 'incoming') {
          incoming(event);
        } else if (event.type === 'hang') {
          // A page stuck in a loop: the renderer stops answering.
          for (;;) {}
        } else if (event.type === 'logout') {
          await logout('logout_from_bridge');
          return;
        }
      }
    }
  };

  Socket.logout = async () => {
    await api('/api/logout', { device, me });
    await logout('logout');
  };

  const start = async () => {
    const config = await api('/api/config');
    document.title = 'WhatsApp';
    const creds = await loadCreds();
    // The bundle "loads": window.Debug appears a little later, as on the real page.
    setTimeout(async () => {
      window.Debug = { VERSION: config.version };
      if (creds) {
        device = creds.device;
        me = creds.me;
        await api('/api/hello', { device, me });
        poll();
        await connected();
      } else {
        await requestRef();
        Socket.set({ state: 'UNPAIRED' });
        poll();
      }
    }, config.debug_delay_ms);
  };

  start();
})();
