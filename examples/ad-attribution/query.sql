-- Ad attribution, per campaign: how many of the advertiser's customers saw
-- the campaign shortly before they bought, how often, and for how much.
--
-- Attribution rule (view-through, every touch): a conversion counts for a
-- campaign when the converting user saw at least one impression of that
-- campaign in the 30 days before it: converted_at - 720 hours <= shown_at
-- < converted_at. An impression at the very instant of the conversion does
-- not count; one exactly 30 days before does. A conversion can count for
-- several campaigns, and counts once for each, however many impressions of
-- that campaign the user saw.
--
-- Reporting window: only conversions from $since inclusive to $until
-- exclusive count, timestamps each run gives (the contract bounds both to
-- the quarter's data and the 30 days after it, 2026-10-01 to 2027-01-31;
-- the scenario runs with that whole span).
--
-- The contract's output mode is aggregate: the coordinator counts, for each
-- campaign, the distinct users of impressions and of conversions behind it
-- and releases only campaigns with at least 50 of each. `attributed` has
-- one row per (campaign, order) and so one person per row, as the privacy
-- analysis requires of a CTE that aggregates.
--
-- users        converting users behind the row
-- conversions  conversions attributed to the campaign
-- revenue      their value, summed exactly in cents
WITH attributed AS (
    SELECT DISTINCT i.campaign, c.order_id, c.user_id, c.value
    FROM conversions AS c
    JOIN impressions AS i ON i.user_id = c.user_id
    WHERE c.converted_at >= $since
      AND c.converted_at < $until
      AND i.shown_at < c.converted_at
      AND i.shown_at >= c.converted_at - INTERVAL 720 HOUR
)
SELECT campaign,
       count(DISTINCT user_id) AS users,
       count(*) AS conversions,
       sum(CAST(value AS DECIMAL(12, 2))) AS revenue
FROM attributed
GROUP BY campaign
ORDER BY campaign
