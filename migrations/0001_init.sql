-- Initial schema: tenants, keys, tokens, contacts, leads, messages, webhook events, outbox jobs.
-- Timestamps are RFC 3339 UTC text.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- One tenant, one key (SPEC section 3).
CREATE TABLE tenant_keys (
    tenant      INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    key         TEXT UNIQUE NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE provider_tokens (
    tenant      INTEGER PRIMARY KEY,
    token       TEXT UNIQUE NOT NULL,
    created_at  TEXT NOT NULL
);

-- A contact is a person; each channel identity is a column so a lead moving between
-- channels stays one contact (matched in the order of SPEC 5.2).
CREATE TABLE contacts (
    id                 INTEGER PRIMARY KEY,
    tenant             INTEGER NOT NULL,
    name               TEXT,
    whatsapp_phone     TEXT,
    avito_user_id      TEXT,
    avito_login        TEXT,
    telegram_user_id   TEXT,
    telegram_username  TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE UNIQUE INDEX contacts_whatsapp ON contacts(tenant, whatsapp_phone) WHERE whatsapp_phone IS NOT NULL;
CREATE UNIQUE INDEX contacts_avito_user ON contacts(tenant, avito_user_id) WHERE avito_user_id IS NOT NULL;
CREATE INDEX contacts_avito_login ON contacts(tenant, avito_login) WHERE avito_login IS NOT NULL;
CREATE UNIQUE INDEX contacts_telegram ON contacts(tenant, telegram_user_id) WHERE telegram_user_id IS NOT NULL;

CREATE TABLE leads (
    id               INTEGER PRIMARY KEY,
    tenant           INTEGER NOT NULL,
    contact_id       INTEGER NOT NULL REFERENCES contacts(id),
    channel          TEXT NOT NULL,
    stage            TEXT NOT NULL DEFAULT 'new',
    title            TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    last_message_at  TEXT
);
CREATE UNIQUE INDEX leads_contact ON leads(tenant, contact_id);

-- Where a lead can be reached: (channel, peer) pairs, e.g. ('avito', chat id).
CREATE TABLE lead_contacts (
    lead_id       INTEGER NOT NULL REFERENCES leads(id),
    tenant        INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    peer          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, channel, peer)
);
CREATE INDEX lead_contacts_lead ON lead_contacts(lead_id);

CREATE TABLE messages (
    id                   INTEGER PRIMARY KEY,
    tenant               INTEGER NOT NULL,
    contact_id           INTEGER,
    lead_id              INTEGER,
    direction            TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    author               TEXT NOT NULL CHECK (author IN ('lead', 'bot', 'operator')),
    channel              TEXT NOT NULL,
    peer                 TEXT,
    text                 TEXT,
    attachments          TEXT NOT NULL DEFAULT '[]',
    provider_message_id  TEXT,
    status               TEXT NOT NULL,
    error                TEXT,
    outbox_job_id        TEXT,
    ts                   TEXT NOT NULL,
    created_at           TEXT NOT NULL
);
CREATE UNIQUE INDEX messages_provider_id ON messages(tenant, channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_contact ON messages(tenant, contact_id, id);
CREATE UNIQUE INDEX messages_outbox_job ON messages(outbox_job_id) WHERE outbox_job_id IS NOT NULL;

CREATE TABLE webhook_events (
    id           INTEGER PRIMARY KEY,
    tenant       INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    event        TEXT NOT NULL,
    message_id   TEXT,
    payload      TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX webhook_events_message ON webhook_events(tenant, channel, message_id)
    WHERE message_id IS NOT NULL;

-- Every accepted POST /send, with its outcome (GET /send/{job_id}).
CREATE TABLE outbox_jobs (
    job_id      TEXT PRIMARY KEY,
    tenant      INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- GET /health writes here to prove the database is writable.
CREATE TABLE health_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  TEXT NOT NULL
);
