-- 0006 is issue 25 items 1-4 (exposure controls), built on another branch and merged
-- before 0007. This placeholder only keeps the numbering without gaps on the audit
-- trail's branch (db/migrate.py refuses gaps); it is to be deleted at merge, in favour
-- of the real 0006, together with the (6, 'reserved') of schema.sql's closing INSERT.
SELECT 1;
