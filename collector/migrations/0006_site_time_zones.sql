-- Footfall schema, version 6: each site's time zone (an IANA name such as Europe/Berlin);
-- its opening hours are local time in it. Sites imported before it are UTC.
ALTER TABLE sites ADD COLUMN tz String DEFAULT 'UTC' AFTER lon
