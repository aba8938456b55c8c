-- Reference data for load tests: ten merchants with known keys and their
-- payment history (loaded after the migrations).
INSERT INTO merchants (merchant_id, name)
SELECT 'mer_seed_' || i, 'Seed merchant ' || i FROM generate_series(1, 10) AS i;
INSERT INTO api_keys (api_key, merchant_id)
SELECT 'key_seed_' || i, 'mer_seed_' || i FROM generate_series(1, 10) AS i;
INSERT INTO payments (payment_id, merchant_id, amount, currency, status)
SELECT 'pay_seed_' || i, 'mer_seed_' || (1 + i % 10), 100 + i % 5000, 'USD', 'succeeded'
FROM generate_series(1, 5000) AS i;
