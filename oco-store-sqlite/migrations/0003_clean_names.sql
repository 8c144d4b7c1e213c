-- Schema version 3 changes no table. Names (hostnames, family and group names, package
-- versions, container and rule names) must now be on one line and shown as written: no control
-- characters and no bidirectional formatting characters. Names stored before are made so by code
-- that runs with this migration, in its transaction (`clean_names` in src/schema.rs): refused
-- characters dropped, white space trimmed, the name cut to 255 characters, and a name left
-- empty, or equal to another's where names are unique, given its kind and id.
SELECT 1;
