-- Incidents with their firing and (if any) resolved times; {only_open:UInt8} = 1 keeps the
-- ones still firing.
SELECT
    alert_id,
    any(model_id)                          AS model,
    any(niche)                             AS niche,
    any(metric)                            AS metric,
    minIf(at, state = 'firing')            AS fired_at,
    if(countIf(state = 'resolved') > 0, toNullable(minIf(at, state = 'resolved')), NULL) AS resolved_at,
    anyIf(baseline, state = 'firing')      AS baseline,
    anyIf(current, state = 'firing')       AS current_at_firing,
    if(countIf(state = 'resolved') > 0, 'resolved', 'firing') AS status
FROM sentinel.alerts FINAL
WHERE at >= {start:DateTime64(3)} AND at < {end:DateTime64(3)}
GROUP BY alert_id
HAVING {only_open:UInt8} = 0 OR status = 'firing'
ORDER BY fired_at DESC
