-- API bearer tokens: only the sha256 of the secret is stored; the secret is shown once.
CREATE TABLE IF NOT EXISTS public.api_tokens (
    token_id     text PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,
    owner        text NOT NULL,
    is_admin     boolean NOT NULL DEFAULT false,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_tokens_owner_idx ON public.api_tokens (owner);
