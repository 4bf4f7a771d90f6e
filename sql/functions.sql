-- Cost per image (DESIGN.md "Metrics"), the one SQL definition of sentinel/cost.py's formula:
--     self-hosted = gpu_seconds x price of its GPU type per second x (1 + orchestration overhead)
--                   + platform fee
--     API-priced  = api_cost_usd + platform fee
-- tests/sql/test_cost_formula.py proves it equal to Pricing.job_cost and checks that no other
-- file under sql/ or deploy/ spells it out.
--
-- Pricing comes in as arguments, never read from a table here: the price list as parallel
-- arrays (gpu_types, gpu_prices in USD per hour), the overhead fraction and the fee per image.
-- Reports bind them from the pricing file; the dashboard reads them from sentinel.pricing.
-- A GPU type missing from the list, or an API job without api_cost_usd, costs NaN (never a
-- silent 0); the Python side raises PricingError instead.
--
-- Applied on every migrate, after bootstrap.sql and before the migrations (CREATE OR REPLACE
-- is idempotent), so this file stays the only copy: a change to the formula is an edit here,
-- not a new migration that repeats it. SQL functions belong to the server, not to a database
-- (hence the sentinel_ prefix), and are not part of a database backup; re-running migrate
-- restores them. chDB keeps them under <path>/user_defined/.

CREATE OR REPLACE FUNCTION sentinel_gpu_compute_usd AS (provider, gpu_type, gpu_seconds, gpu_types, gpu_prices) ->
    if(provider = 'api', 0., gpu_seconds * transform(gpu_type, gpu_types, gpu_prices, nan) / 3600);

CREATE OR REPLACE FUNCTION sentinel_orchestration_usd AS (provider, gpu_type, gpu_seconds, gpu_types, gpu_prices, overhead) ->
    sentinel_gpu_compute_usd(provider, gpu_type, gpu_seconds, gpu_types, gpu_prices) * overhead;

CREATE OR REPLACE FUNCTION sentinel_api_price_usd AS (provider, api_cost_usd) ->
    if(provider = 'api', ifNull(api_cost_usd, nan), 0.);

-- Same operations in the same order as Pricing.job_cost (each branch adds an exact 0.), so the
-- two agree to the last bit, not just to rounding.
CREATE OR REPLACE FUNCTION sentinel_job_cost_usd AS
    (provider, gpu_type, gpu_seconds, api_cost_usd, gpu_types, gpu_prices, overhead, platform_fee) ->
    sentinel_gpu_compute_usd(provider, gpu_type, gpu_seconds, gpu_types, gpu_prices) * (1 + overhead)
        + sentinel_api_price_usd(provider, api_cost_usd) + platform_fee;

-- An exact quantile of a histogram, with quantileExactInclusive's arithmetic bit for bit (linear
-- interpolation between order statistics, numpy's default percentile): ``vals`` ascending,
-- ``cum`` their cumulative counts. The report rollups (sql/migrations/0012) keep delivered
-- latencies as (value, count) per month, so the report's p50/p95 and latency CDF stay exact
-- without reading every job. NaN for an empty histogram, as quantileExactInclusive.
CREATE OR REPLACE FUNCTION sentinel_hist_interpolate AS (vals, cum, h, i) ->
    vals[i] + (h - floor(h)) * (if(cum[i] >= floor(h) + 1, vals[i], vals[i + 1]) - vals[i]);

-- h = level x (n - 1) + 1 is the 1-based rank (as in ClickHouse's QuantileExactInclusive); the
-- entry holding order statistic floor(h) is found once, the next order statistic is that entry
-- or the following one.
CREATE OR REPLACE FUNCTION sentinel_hist_quantile AS (vals, cum, level) ->
    if(length(cum) = 0, nan,
       if(floor(level * (cum[-1] - 1) + 1) >= cum[-1], vals[-1],
          sentinel_hist_interpolate(vals, cum, level * (cum[-1] - 1) + 1,
                                    arrayFirstIndex(c -> c >= floor(level * (cum[-1] - 1) + 1), cum))));
