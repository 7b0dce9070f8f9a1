-- Ad attribution, per campaign, differentially private: the query of
-- query.sql in the shape mode differential_privacy takes (the contract
-- contract-dp.yaml.tmpl). The coordinator bounds each user's contribution
-- (at most 3 campaigns, 2 conversions in each, values clamped to
-- [0, 200]), adds noise to every count and sum, and releases exactly the
-- campaigns the contract lists as public groups, in its order. Every run
-- spends epsilon_per_run of the contract's budget. Its reporting window,
-- $since to $until, is query.sql's, with the same bounds.
--
-- users        converting users behind the row (noisy)
-- conversions  conversions attributed to the campaign (noisy)
-- revenue      their value, each clamped to [0, 200] (noisy)
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
       sum(value) AS revenue
FROM attributed
GROUP BY campaign
