-- The roles and the database of a pam-mfa fleet store, least privilege.
--
-- Run once as a superuser (psql -f docs/fleet-roles.sql), then as pam_mfa_admin:
--   pam-mfa store init --config /etc/pam-mfa/policy.toml
-- which creates the tables and grants pam_mfa_module exactly what a login needs:
--   accounts  SELECT                  (the sealed secret and how codes are made)
--   state     SELECT, UPDATE          (reserve an attempt, accept a step or counter)
--   recovery  SELECT, UPDATE (used)   (burn a recovery code)
--   EXECUTE on pam_mfa_self_rotate and pam_mfa_self_recovery (pam-mfa-user's new
--             secret or recovery codes for an account whose secret the user just proved)
-- and nothing else: the module's role cannot enroll, remove, insert, delete or read
-- another schema. Every other change (enroll, remove, unlock, recovery, import, rekey,
-- migrate) is the admin role's, from the admin host.
--
-- Both roles log in with a client certificate whose CN is the role's name (pg_hba.conf:
-- `hostssl pam_mfa pam_mfa_module,pam_mfa_admin 0.0.0.0/0 cert`), or with a password
-- (scram-sha-256) given to pam-mfa through `password_file`.

CREATE ROLE pam_mfa_admin LOGIN;
CREATE ROLE pam_mfa_module LOGIN;
CREATE DATABASE pam_mfa OWNER pam_mfa_admin;
-- Nobody else may create objects in the store's database.
REVOKE ALL ON DATABASE pam_mfa FROM PUBLIC;
GRANT CONNECT ON DATABASE pam_mfa TO pam_mfa_admin, pam_mfa_module;
