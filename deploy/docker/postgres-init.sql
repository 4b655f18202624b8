-- One database per service (run once by the postgres image on an empty volume).
CREATE DATABASE dibao_intake;
CREATE DATABASE dibao_assessment;
CREATE DATABASE dibao_publicity;
CREATE DATABASE dibao_payments;
CREATE DATABASE dibao_audit;
-- The audit service's runtime login: not the owner, not a superuser. Its migrations grant
-- it what appending needs (INSERT and SELECT) and nothing that could change the log.
CREATE ROLE dibao_audit_app LOGIN PASSWORD 'dibao-audit-app';
