-- 0008: the web consoles (issue 28). People who sign in to the tenant console (an email
-- and a password set through an invitation), the one-time links that bring them there
-- (invitations; the sign-in links `smsgw run` prints), and the consoles' sessions, kept
-- here so that signing out, or an operator, can end one at once. Cookies carry only a
-- random id; the database keeps its SHA-256, as it does for API keys.

CREATE TABLE console_users (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    -- Lower-cased by the application; one account per address across tenants, so that
    -- signing in needs no tenant name.
    email text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    -- An argon2id PHC string (memory-hard); NULL until the invitation is accepted.
    password_hash text,
    role text NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'member')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_users_tenant_idx ON console_users (tenant_id);

-- A one-time link: an invitation (for `email` at `tenant_id`: it sets the password) or a
-- sign-in link (operator, or a tenant without a user). Only the token's digest is kept.
CREATE TABLE console_links (
    token_sha256 bytea PRIMARY KEY,
    purpose text NOT NULL CHECK (purpose IN ('invitation', 'sign_in')),
    audience text NOT NULL CHECK (audience IN ('operator', 'tenant')),
    tenant_id uuid REFERENCES tenants (id),
    email text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    CHECK ((audience = 'tenant') = (tenant_id IS NOT NULL)),
    CHECK (purpose <> 'invitation' OR email IS NOT NULL)
);
CREATE INDEX console_links_tenant_idx ON console_links (tenant_id) WHERE tenant_id IS NOT NULL;

CREATE TABLE console_sessions (
    id_sha256 bytea PRIMARY KEY,
    audience text NOT NULL CHECK (audience IN ('operator', 'tenant')),
    tenant_id uuid REFERENCES tenants (id),
    user_id uuid REFERENCES console_users (id),
    -- Every form of the session carries it (a forged cross-site post cannot).
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK ((audience = 'tenant') = (tenant_id IS NOT NULL))
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id) WHERE user_id IS NOT NULL;

-- The operator's tenant list: a name's prefix, case-insensitive, in name order.
CREATE INDEX tenants_name_idx ON tenants (lower(name), id);
