// Avio's WhatsApp Web adapter: runs inside the page (installed on every new document),
// reaches WhatsApp Web's own modules through `window.require` the way whatsapp-web.js
// 1.34.7 does, and reports to Rust through the `avioBridge` CDP binding
// (one JSON string per call). Rust calls back into `window.__avio.*` with
// Runtime.evaluate. Every module lookup goes through `need()`, so a module WhatsApp
// renamed is reported as `adapter_incompatible: <name>` instead of hanging.
(() => {
  'use strict';
  if (window.__avio) return;

  const emit = (type, data) => {
    try {
      window.avioBridge(JSON.stringify(Object.assign({ type }, data || {})));
    } catch (e) {
      // No binding in this document (about:blank, or the page is going away).
    }
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const need = (name) => {
    let module;
    try {
      module = window.require(name);
    } catch (e) {
      module = undefined;
    }
    if (!module) throw new Error('adapter_incompatible: ' + name);
    return module;
  };
  const widString = (wid) => (wid == null ? null : typeof wid === 'string' ? wid : wid._serialized || String(wid));

  // States in which whatsapp-web.js waits before deciding between QR and restore.
  const WAITING = ['OPENING', 'UNLAUNCHED', 'PAIRING'];
  const NEEDS_AUTH = ['UNPAIRED', 'UNPAIRED_IDLE'];
  // Socket states after which whatsapp-web.js reports `disconnected`.
  const ACCEPTED = ['CONNECTED', 'OPENING', 'PAIRING', 'TIMEOUT'];

  const avio = {
    // Ids of messages Avio sent: their `add` echo is not the phone writing.
    sent: new Set(),
    ready: false,
    qrStarted: false,
  };
  window.__avio = avio;

  const qrString = async (ref) => {
    const registration = await need('WAWebSignalStoreApi').waSignalStore.getRegistrationInfo();
    const noise = await need('WAWebUserPrefsInfoStore').waNoiseInfo.get();
    const b64 = need('WABase64').encodeB64;
    const adv = await need('WAWebUserPrefsMultiDevice').getADVSecretKey();
    const platform = need('WAWebCompanionRegClientUtils').DEVICE_PLATFORM;
    return [ref, b64(noise.staticKeyPair.pubKey), b64(registration.identityKeyPair.pubKey), adv, platform].join(',');
  };

  const emitQr = async (ref) => {
    if (!ref || avio.ready) return;
    try {
      emit('qr', { qr: await qrString(ref) });
    } catch (e) {
      emit('failed', { error: String((e && e.message) || e) });
    }
  };

  const startQr = () => {
    if (avio.qrStarted) return;
    avio.qrStarted = true;
    const { Conn } = need('WAWebConnModel');
    Conn.on('change:ref', (_conn, ref) => emitQr(ref));
    emitQr(Conn.ref);
  };

  const onSynced = () => {
    if (avio.ready) return;
    const meUser = need('WAWebUserPrefsMeUser');
    const me = meUser.getMaybeMePnUser() || meUser.getMaybeMeLidUser();
    const info = need('WAWebConnModel').Conn.serialize() || {};
    avio.ready = true;
    emit('ready', { me: widString(me), pushname: info.pushname || null, version: window.Debug.VERSION });
  };

  const onState = (state) => {
    emit('socket_state', { state });
    if (NEEDS_AUTH.includes(state) && !avio.ready) {
      startQr();
      // The QR refs ran out: ask for new ones (whatsapp-web.js means to, from Node).
      if (state === 'UNPAIRED_IDLE') need('WAWebCmd').Cmd.refreshQR();
      return;
    }
    if (!ACCEPTED.includes(state)) emit('disconnected', { state });
  };

  const serialize = (msg) => {
    const m = typeof msg.serialize === 'function' ? msg.serialize() : msg;
    const id = m.id || {};
    const hasMedia = !!m.directPath;
    const serializedId = id._serialized;
    return {
      id: serializedId,
      fromMe: !!id.fromMe,
      remote: widString(id.remote),
      from: widString(m.from),
      to: widString(m.to),
      author: widString(m.author),
      type: m.type,
      // For media `body` holds the thumbnail; the text is the caption.
      body: hasMedia ? null : m.body == null ? null : String(m.body),
      caption: m.caption == null ? null : String(m.caption),
      t: m.t,
      notifyName: m.notifyName || null,
      hasMedia,
      mimetype: m.mimetype || null,
      filename: m.filename || null,
      size: m.size || null,
      avio: avio.sent.has(serializedId),
    };
  };

  const onAdd = (msg) => {
    if (!msg || !msg.isNewMsg) return;
    if (msg.type === 'ciphertext') {
      // "Waiting for this message": the real content arrives as a type change.
      msg.once('change:type', (decrypted) => onAdd(decrypted));
      return;
    }
    emit('message', { message: serialize(msg) });
  };

  const attach = async () => {
    const { Socket } = need('WAWebSocketModel');
    const { Cmd } = need('WAWebCmd');
    const { Msg } = need('WAWebCollections');
    Cmd.on('logout', () => emit('logout', { reason: 'logout' }));
    Cmd.on('logout_from_bridge', () => emit('logout', { reason: 'logout_from_bridge' }));
    Msg.on('add', onAdd);
    Msg.on('change:ack', (msg, ack) => {
      if (msg && msg.id && msg.id.fromMe) emit('ack', { id: msg.id._serialized, ack });
    });
    Socket.on('change:hasSynced', (_socket, synced) => {
      if (synced) onSynced();
    });
    while (WAITING.includes(Socket.state)) {
      await new Promise((resolve) => Socket.once('change:state', resolve));
    }
    Socket.on('change:state', (_socket, state) => onState(state));
    if (Socket.hasSynced) onSynced();
    else onState(Socket.state);
  };

  const boot = async () => {
    const started = Date.now();
    // whatsapp-web.js's readiness probe: the page's bundle has loaded.
    while (!(window.Debug && window.Debug.VERSION)) {
      if (Date.now() - started > 60000) {
        emit('failed', { error: 'auth timeout: window.Debug.VERSION never appeared' });
        return;
      }
      await sleep(200);
    }
    emit('loading', { version: window.Debug.VERSION, url: location.href });
    if (location.search.includes('post_logout=1')) emit('logout', { reason: 'post_logout' });
    try {
      await attach();
    } catch (e) {
      emit('failed', { error: String((e && e.message) || e) });
    }
  };

  const bytesToB64 = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  };

  const b64ToBytes = (b64) => {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  };

  const getChat = async (to) => {
    const wid = need('WAWebWidFactory').createWid(to);
    const { Chat } = need('WAWebCollections');
    let chat = Chat.get(wid);
    if (!chat) {
      const found = await need('WAWebFindChatAction').findOrCreateLatestChat(wid);
      chat = found && found.chat;
    }
    if (!chat) throw new Error('chat_not_found: ' + to);
    return chat;
  };

  // whatsapp-web.js `processMediaData`: the page's own prepare-and-upload pipeline.
  const prepareMedia = async (media, asDocument) => {
    const OpaqueData = need('WAWebMediaOpaqueData');
    const file = new File([b64ToBytes(media.b64)], media.filename || 'file', {
      type: media.mimetype,
      lastModified: Date.now(),
    });
    const opaque = await OpaqueData.createFromData(file, file.type);
    const mediaData = await need('WAWebPrepRawMedia')
      .prepRawMedia(opaque, { asDocument, asSticker: false, asGif: false, isPtt: false })
      .waitForPrep();
    if (!mediaData.filehash) throw new Error('media_prep_failed');
    const mediaObject = need('WAWebMediaStorage').getOrCreateMediaObject(mediaData.filehash);
    const mediaType = need('WAWebMmsMediaTypes').msgToMediaType({ type: mediaData.type, isGif: mediaData.isGif });
    if (!(mediaData.mediaBlob instanceof OpaqueData)) {
      mediaData.mediaBlob = await OpaqueData.createFromData(mediaData.mediaBlob, mediaData.mediaBlob.type);
    }
    mediaData.renderableUrl = mediaData.mediaBlob.url();
    mediaObject.consolidate(mediaData.toJSON());
    mediaData.mediaBlob.autorelease();
    const uploaded = await need('WAWebMediaMmsV4Upload').uploadMedia({
      mimetype: mediaData.mimetype,
      mediaObject,
      mediaType,
    });
    const entry = uploaded && uploaded.mediaEntry;
    if (!entry) throw new Error('media_upload_failed');
    mediaData.set({
      clientUrl: entry.mmsUrl,
      deprecatedMms3Url: entry.deprecatedMms3Url,
      directPath: entry.directPath,
      mediaKey: entry.mediaKey,
      mediaKeyTimestamp: entry.mediaKeyTimestamp,
      filehash: mediaObject.filehash,
      encFilehash: entry.encFilehash,
      uploadhash: entry.uploadHash,
      size: mediaObject.size,
      streamingSidecar: entry.sidecar,
      firstFrameSidecar: entry.firstFrameSidecar,
    });
    return mediaData;
  };

  // whatsapp-web.js `sendMessage`: build the message model and let the page send it.
  avio.send = async (to, text, media) => {
    if (!avio.ready) throw new Error('not_ready');
    const chat = await getChat(to);
    const MsgKey = need('WAWebMsgKey');
    const meUser = need('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const key = new MsgKey({
      from: meUser,
      to: chat.id,
      id: await MsgKey.newId(),
      participant: undefined,
      selfDir: 'out',
    });
    let mediaFields = {};
    if (media) {
      const mediaData = await prepareMedia(media, !!media.asDocument);
      mediaFields = Object.assign({}, mediaData, mediaData.toJSON(), {
        caption: text || undefined,
        filename: media.filename || undefined,
      });
    }
    const message = Object.assign(
      {
        id: key,
        ack: 0,
        body: media ? undefined : text,
        from: meUser,
        to: chat.id,
        local: true,
        self: 'out',
        t: Math.floor(Date.now() / 1000),
        isNewMsg: true,
        type: 'chat',
      },
      need('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat),
      mediaFields,
    );
    avio.sent.add(key._serialized);
    const [added, sent] = need('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await added;
    const result = await sent;
    if (result && result.messageSendResult && result.messageSendResult !== 'OK') {
      throw new Error('send_failed: ' + result.messageSendResult);
    }
    return { id: key._serialized };
  };

  // whatsapp-web.js `Message.downloadMedia`: fetch and decrypt through the page.
  avio.downloadMedia = async (id, maxBytes) => {
    const msg = need('WAWebCollections').Msg.get(id);
    if (!msg) throw new Error('message_not_found: ' + id);
    if (msg.size && msg.size > maxBytes) return { too_large: true, size: msg.size };
    const qpl = {
      addAnnotations() {
        return this;
      },
      addPoint() {
        return this;
      },
    };
    const buffer = await need('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt({
      directPath: msg.directPath,
      encFilehash: msg.encFilehash,
      filehash: msg.filehash,
      mediaKey: msg.mediaKey,
      mediaKeyTimestamp: msg.mediaKeyTimestamp,
      type: msg.type,
      signal: new AbortController().signal,
      downloadQpl: qpl,
    });
    if (buffer.byteLength > maxBytes) return { too_large: true, size: buffer.byteLength };
    return { b64: bytesToB64(buffer), mimetype: msg.mimetype || null, filename: msg.filename || null };
  };

  avio.logout = async () => {
    await need('WAWebSocketModel').Socket.logout();
    return true;
  };

  // The heartbeat: proves the renderer answers and reports what the socket says.
  avio.heartbeat = () => {
    let socket = null;
    try {
      socket = window.require('WAWebSocketModel').Socket.state;
    } catch (e) {
      socket = null;
    }
    return { ready: avio.ready, socket };
  };

  boot();
})();
