CREATE TABLE payments (
    payment_id     TEXT PRIMARY KEY,
    merchant_id    TEXT NOT NULL REFERENCES merchants (merchant_id) ON DELETE CASCADE,
    status         TEXT NOT NULL CHECK (status IN ('requires_confirmation', 'succeeded', 'failed')),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       CHAR(3) NOT NULL,
    customer_id    TEXT,
    email          TEXT,
    capture_method TEXT NOT NULL DEFAULT 'automatic',
    payment_method TEXT,
    -- Card data is kept only until confirmation, and only its last four digits after.
    card           JSONB,
    card_last4     TEXT,
    metadata       JSONB,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payments_merchant_created_idx ON payments (merchant_id, created_at DESC);
CREATE INDEX payments_customer_idx ON payments (customer_id) WHERE customer_id IS NOT NULL;
