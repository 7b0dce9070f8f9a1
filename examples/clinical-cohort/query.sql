-- Trial feasibility: how many of the hospital network's patients would be
-- eligible for the sponsor's planned type 2 diabetes trial, per site and
-- band of the sponsor's risk model (risk_band, a WebAssembly model the
-- contract names: its weights stay with the sponsor and the coordinator).
-- The criteria are the sponsor's and stay confidential: only the sponsor
-- and the coordinator see this text.
--
-- Eligible, on the reference date 2026-12-01:
--   * primary diagnosis type 2 diabetes (ICD-10 E11, any subcode);
--   * aged $min_age to $max_age in completed years: the cohort's age
--     bounds, parameters each run gives (the contract bounds them to 18 to
--     90; the scenario runs with 40 and 75);
--   * HbA1c from 7.5 % to 10.5 % inclusive, and eGFR at least 45;
--   * seen since 2025-06-01 inclusive;
--   * not in one of the sponsor's trials: no enrolment that is ongoing
--     (no end date) or ends on or after the reference date.
-- A missing HbA1c or eGFR makes a patient ineligible.
--
-- patients: eligible patients behind the row. The coordinator counts them
-- itself (mode aggregate) and releases only rows with at least 20.
WITH aged AS (
    SELECT *,
           2026 - year(birth_date)
             - CASE WHEN month(birth_date) * 100 + day(birth_date) > 1201 THEN 1 ELSE 0 END AS age
    FROM patients
),
eligible AS (
    SELECT patient_id, site, age, sex, hba1c, egfr
    FROM aged AS p
    WHERE p.diagnosis LIKE 'E11%'
      AND p.age BETWEEN $min_age AND $max_age
      AND p.hba1c BETWEEN 7.5 AND 10.5
      AND p.egfr >= 45
      AND p.last_visit >= DATE '2025-06-01'
      AND NOT EXISTS (
          SELECT 1
          FROM enrolments AS e
          WHERE e.patient_id = p.patient_id
            AND (e.ended_on IS NULL OR e.ended_on >= DATE '2026-12-01'))
)
SELECT site,
       risk_band(age, sex, CAST(hba1c AS DOUBLE), egfr) AS risk_band,
       count(DISTINCT patient_id) AS patients
FROM eligible
GROUP BY site, risk_band
ORDER BY site, risk_band
