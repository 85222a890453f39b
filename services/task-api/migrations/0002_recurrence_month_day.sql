-- Day of month a monthly series falls on, so clamping to short months
-- (Jan 31 -> Feb 28) does not drift the following occurrences.
ALTER TABLE tasks ADD COLUMN recurrence_month_day smallint;
